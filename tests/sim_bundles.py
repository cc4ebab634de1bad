"""Bundles for tests that run the simulated kiosk: the trained default bundle when it is there,
and a random-weight bundle for checks decided before inference (gates, challenge)."""

from __future__ import annotations

import json
from pathlib import Path

from flashfas_edge import _core
from flashfas_edge.config import ConfigError
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle


def default_bundle_or_none() -> Path | None:
    from flashfas_edge.kiosk.assembly import default_bundle_dir

    try:
        return default_bundle_dir()
    except ConfigError:
        return None


def random_weight_bundle(directory: Path) -> Path:
    folder = write_synthetic_bundle(directory, n0=5, input_size=64)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"] = {"method": _core.NORMALISATION}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder

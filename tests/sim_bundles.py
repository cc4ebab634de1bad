"""Bundles for tests that run the simulated kiosk: the trained default bundle when it is there,
and a random-weight bundle for checks decided before inference (gates, challenge); and one check
asked the way a kiosk asks it."""

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


def random_weight_bundle(directory: Path, challenge_family: str = "white_levels") -> Path:
    folder = write_synthetic_bundle(directory, n0=5, input_size=64,
                                    challenge_family=challenge_family)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"] = {"method": _core.NORMALISATION}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def run_check_on(kiosk, pipeline, subject):  # type: ignore[no-untyped-def]
    """``subject`` in front of the simulated kiosk, then one check; asked again (3 tries) when an
    overloaded CPU made the simulated camera drop a needed frame (``no_clean_frame``)."""
    import time

    from flashfas_edge.pipeline.result import Reason

    kiosk.set_subject(subject)
    time.sleep(0.1)
    for _ in range(3):
        result = pipeline.run_check()
        if result.reason is not Reason.NO_CLEAN_FRAME:
            return result
    return result


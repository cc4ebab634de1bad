"""Writing an ensemble bundle's folder and manifest (docs/MODEL_BUNDLE.md, format version 2).

Member 0's files keep their names, member k's go to ``m<k>/`` and are listed as ``m<k>.<module>``;
every file keeps its sha256. The threshold written here is a placeholder: whoever assembles an
ensemble must fix it on dev data (``flashfas-edge ensemble`` does, through ONNX Runtime).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from flashfas_edge.inference.bundle import (
    ENSEMBLE_COMBINE,
    ENSEMBLE_FORMAT_VERSION,
    MANIFEST_NAME,
    Bundle,
    member_module_key,
)

# What every member must agree on: the input the pipeline feeds and the outputs' meaning.
CONTRACT_FIELDS = (
    "architecture", "n0", "n_diff", "input_size", "depth_size", "channel_order", "layout",
    "normalisation", "attack_types", "routing", "flash_levels", "challenge_family",
)


def assemble_ensemble(
    member_dirs: list[Path], members: list[Bundle], out_dir: Path, *, name: str | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Copy the members' files into ``out_dir`` and write the format-2 manifest; returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    modules: dict[str, Any] = {}
    for k, member in enumerate(members):
        folder = out_dir if k == 0 else out_dir / f"m{k}"
        folder.mkdir(exist_ok=True)
        for role, spec in member.modules.items():
            shutil.copyfile(spec.path, folder / spec.path.name)
            modules[member_module_key(k, role)] = {
                "file": (folder / spec.path.name).relative_to(out_dir).as_posix(),
                "sha256": spec.sha256,
                "inputs": list(spec.inputs),
                "outputs": list(spec.outputs),
            }
    first = members[0].manifest
    manifest: dict[str, Any] = {
        "format_version": ENSEMBLE_FORMAT_VERSION,
        "name": name or out_dir.name,
        **{key: first[key] for key in ("architecture", "config") if key in first},
        **{key: first[key] for key in CONTRACT_FIELDS[1:] if key in first},
        "feature_channels": first.get("feature_channels"),
        "depth_bins": first.get("depth_bins"),
        "ensemble": {"members": len(members), "combine": ENSEMBLE_COMBINE[0]},
        "modules": modules,
        "threshold": {"default": threshold, "source": "not yet fixed on dev"},
        "provenance": {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "members": [
                {
                    "bundle": str(d),
                    "name": m.name,
                    "manifest_sha256": m.manifest_sha256,
                    "threshold": m.threshold_default,
                    "provenance": m.manifest.get("provenance", {}),
                }
                for d, m in zip(member_dirs, members, strict=True)
            ],
        },
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest

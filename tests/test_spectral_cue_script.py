"""scripts/measure_spectral_cue.py, run as a person runs it: the colour cue between skin and the
paint matched to it is there in the renderer's physics, and its own ablation (the paint given the
victim's skin spectrum) takes it away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_spectral_cue.py"

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "cue.json"
    subprocess.run([sys.executable, str(SCRIPT), "--people", "40", "--json", str(out), *extra],
                   check=True, capture_output=True, timeout=300)
    return json.loads(out.read_text())


def test_skin_and_its_matched_paint_separate_under_the_primaries_and_the_ablation_removes_it(
    tmp_path,
):
    report = _run(tmp_path)
    assert len(report["physics"]) == 9  # every kiosk build of the simulator
    for build, row in report["physics"].items():
        assert row["fisher_dprime"] > 3.0, (build, row)
        # no single entry gives it away: the cue is a combination of the nine
        assert row["largest_entry_shift_in_skin_sds"] < 3.0, (build, row)
    ablated = _run(tmp_path, "--ablate", "paint_is_skin")
    assert ablated["ablations"] == ["paint_is_skin"]
    for build, row in ablated["physics"].items():
        assert row["fisher_dprime"] < 1.0, (build, row)  # sampling noise of 20 people a half
        assert row["largest_entry_shift_in_skin_sds"] == 0.0

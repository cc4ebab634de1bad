"""scripts/measure_diffusion_cue.py, run as a person runs it: skin diffuses red further than blue
and more than the silicone painted to match it, and at the camera the renderer's diffusion under
skin takes detail out of the red flash image more than out of the blue one (the same sessions
rendered with and without it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_diffusion_cue.py"

pytestmark = pytest.mark.slow


def test_skin_diffuses_red_furthest_and_the_camera_sees_it_soften_the_red_flash_image(
    tmp_path,
):
    out = tmp_path / "cue.json"
    subprocess.run([sys.executable, str(SCRIPT), "--people", "20", "--render", "10",
                    "--workers", "2", "--json", str(out)],
                   check=True, capture_output=True, timeout=600)
    report = json.loads(out.read_text())
    assert len(report["physics"]) == 9  # every kiosk build of the simulator
    for build, row in report["physics"].items():
        red, green, blue = row["skin_mm_rgb_median"]
        assert red > green > blue > 0, (build, row)
        assert 0.5 < red < 3.0, (build, row)  # millimetres: a few pixels of a face at 0.5 m
        silicone_red, _g, silicone_blue = row["silicone_mm_rgb_median"]
        assert 0 < silicone_blue < silicone_red, (build, row)
        assert row["silicone_red_over_blue_median"] < row["skin_red_over_blue_median"], build
    assert report["rendered_sessions"] == 10
    paired = [entry for scenario, entry in report["rendered"]["3.0"].items()
              if scenario != "sunlight" and "with_over_without_rgb_median" in entry]
    assert paired, report["rendered"]
    for entry in paired:
        red, _green, blue = entry["with_over_without_rgb_median"]
        # diffusion only ever removes detail, and more of it from red than from blue
        assert red < 0.97 and red < blue <= 1.02, entry

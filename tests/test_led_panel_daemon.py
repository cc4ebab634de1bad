"""`flashfas-edge demo --flash led-sim`: the daemon (`serve`, config `[kiosk.flash] kind =
"led_serial"` on the simulated kiosk) starts, reports ready and answers checks through the real
LED-panel driver on the panel firmware's simulator behind a pty; no attack is accepted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from led_panel_rig import require_bundle_and_compiler

BUNDLE = require_bundle_and_compiler()

pytestmark = pytest.mark.slow


def test_demo_on_the_led_panel_simulator_accepts_live_and_no_attack(tmp_path):
    out = tmp_path / "demo.json"
    result = subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "demo", "--flash", "led-sim", "--ambients",
         "office", "--scenes", "live", "print", "mask", "--json-out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["scene"]: r for r in json.loads(out.read_text())}
    assert rows["live"]["verdict"] == "live"
    assert rows["print"]["verdict"] == "spoof" and rows["mask"]["verdict"] == "spoof"
    assert "PASS: no attack was accepted as live" in result.stdout

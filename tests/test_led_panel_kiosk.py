"""The whole chain on the LED panel: driver → pyserial → pty → the firmware's C core → the LEDs it
switched lighting the simulated scene → the simulated camera → sync, verification, the networks →
a verdict. The promise is the sim flash's: no attack accepted; live faces pass.
"""

from __future__ import annotations

import threading
import time

import pytest
from led_panel_rig import require_bundle_and_compiler
from sim_bundles import run_check_on

from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.flash.led_serial import LedSerialFlash
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline
from flashfas_edge.pipeline.result import Reason, Verdict
from flashfas_edge.sim.device import PROFILES
from flashfas_edge.sim.kiosk import SimKiosk, Subject
from flashfas_edge.sim.kiosk_camera import SimCamera
from flashfas_edge.sim.led_panel import led_panel_profile, start_led_panel

BUNDLE = require_bundle_and_compiler()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from flashfas_edge.inference.factory import create_backend

    backend = create_backend(BUNDLE, "onnxruntime", intra_op_threads=1)
    # scanned faces, the simulated kiosk's default and what the shipped bundle was fine-tuned on:
    # at its threshold (every attack type's dev APCER <= 1 %) the older procedural heads land in
    # the retry band (score_uncertain) for 5 of 12 live checks here, scanned faces for none; an
    # occasional challenge_unclear is what the one-retry allowance below is for
    kiosk = SimKiosk(profile=led_panel_profile(PROFILES[1]), width=320, height=240, seed=9)
    panel = start_led_panel(kiosk, tmp_path_factory.mktemp("panel") / "ttyPANEL")
    flash = LedSerialFlash(str(panel.port))
    pipeline = Pipeline(SimCamera(kiosk), flash, GroundTruthLandmarks(), backend,
                        PipelineConfig(latency_us=kiosk.latency_us,
                                       display_rise_us=kiosk.profile.display_rise_us))
    pipeline.start()
    yield kiosk, panel, pipeline
    pipeline.stop()
    panel.stop()


@pytest.mark.parametrize("attack", ("print", "replay", "mask"))
def test_attacks_are_never_accepted_through_the_led_panel(rig, attack):
    kiosk, _, pipeline = rig
    for scenario in ("office", "dark_room"):
        subject = Subject(attack_type=attack, scenario=scenario, seed=11)
        result = run_check_on(kiosk, pipeline, subject)
        assert result.verdict is not Verdict.LIVE, (attack, scenario, result.score)


def test_live_faces_pass_through_the_led_panel(rig):
    kiosk, _, pipeline = rig
    results = [run_check_on(kiosk, pipeline,
                            Subject(attack_type="live", scenario=scenario, seed=seed))
               for scenario in ("office", "dark_room", "backlight") for seed in (11, 12)]
    decided = [r for r in results if r.verdict is not Verdict.RETRY]
    live = [r for r in decided if r.verdict is Verdict.LIVE]
    assert len(decided) >= len(results) - 1, [(r.reason, r.detail) for r in results]
    assert len(live) >= 0.75 * len(decided), [r.score for r in decided]


def test_a_panel_unplugged_mid_check_gives_retry_and_the_next_check_recovers(rig):
    kiosk, panel, pipeline = rig
    # the dark room: the recovery check below must not depend on a weak flash under office light
    # (a scanned face there is now and then asked to retry for low_flash_snr)
    kiosk.set_subject(Subject(attack_type="live", scenario="dark_room", seed=11))
    time.sleep(1.0)  # clear of the flash-rate window of the previous checks
    unplug = threading.Timer(0.1, panel.unplug)
    unplug.start()
    result = pipeline.run_check()
    unplug.join()
    assert result.verdict is Verdict.RETRY and result.reason is Reason.FLASH_UNAVAILABLE
    panel.plug()
    time.sleep(0.2)
    again = run_check_on(kiosk, pipeline, Subject(attack_type="live", scenario="dark_room",
                                                  seed=11))
    assert again.verdict is not Verdict.RETRY or again.reason is not Reason.FLASH_UNAVAILABLE
    assert again.verdict is Verdict.LIVE, (again.reason, again.score)

"""Liveness decisions with the shipped bundles (engines/edge-default, engines/edge-masks) on ONNX
Runtime.

Live faces and each attack type under several ambient scenarios, through ``run_check`` on the
simulated kiosk (flash, rolling-shutter camera, sync, verification, alignment, diffnorm, the real
networks, the decision). The promise tested: no attack is accepted as live; most live faces are.
The threshold is the bundle's own (dev EER); nothing here tunes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_bundles import run_check_on

from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline
from flashfas_edge.pipeline.result import Reason, Verdict
from flashfas_edge.sim.device import PROFILES

ENGINES = Path(__file__).resolve().parents[1] / "engines"
SHIPPED = ("edge-default", "edge-masks")

_sim = "the simulated kiosk is not part of this build"
SimCamera = pytest.importorskip("flashfas_edge.sim.kiosk_camera", reason=_sim).SimCamera
SimFlashDriver = pytest.importorskip("flashfas_edge.sim.kiosk_flash", reason=_sim).SimFlashDriver
_kiosk = pytest.importorskip("flashfas_edge.sim.kiosk", reason=_sim)
SimKiosk, Subject = _kiosk.SimKiosk, _kiosk.Subject

pytestmark = pytest.mark.slow

SCENARIOS = ("office", "dark_room", "backlight")
ATTACKS = ("print", "replay", "mask")
SEEDS = (11, 12)


@pytest.fixture(scope="module", params=SHIPPED)
def rig(request):
    from flashfas_edge.inference.factory import create_backend

    folder = ENGINES / request.param
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"engines/{request.param} is not in this checkout (no manifest.json)")
    backend = create_backend(folder, "onnxruntime", intra_op_threads=1)
    bundle = backend.bundle
    kiosk = SimKiosk(profile=PROFILES[1], width=320, height=240, seed=9)
    camera, flash = SimCamera(kiosk), SimFlashDriver(kiosk, colour=False)
    pipeline = Pipeline(
        camera, flash, GroundTruthLandmarks(), backend, PipelineConfig(latency_us=kiosk.latency_us)
    )
    pipeline.start()
    yield kiosk, pipeline, bundle
    pipeline.stop()


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_never_accepted_as_live(rig, attack):
    kiosk, pipeline, _ = rig
    for scenario in SCENARIOS:
        for seed in SEEDS:
            result = run_check_on(
                kiosk, pipeline, Subject(attack_type=attack, scenario=scenario, seed=seed)
            )
            assert result.verdict is not Verdict.LIVE, (attack, scenario, seed, result.score)


def test_live_faces_pass_under_several_ambient_scenarios(rig):
    kiosk, pipeline, bundle = rig
    results = [
        run_check_on(kiosk, pipeline, Subject(attack_type="live", scenario=scenario, seed=seed))
        for scenario in SCENARIOS
        for seed in SEEDS
    ]
    decided = [r for r in results if r.verdict is not Verdict.RETRY]
    live = [r for r in decided if r.verdict is Verdict.LIVE]
    assert all(r.threshold == bundle.threshold_default for r in results)
    assert len(decided) >= len(results) - 1, [(r.reason, r.detail) for r in results]
    assert len(live) >= 0.75 * len(decided), [(r.score, r.threshold) for r in decided]
    for r in live:
        assert r.score >= r.threshold and r.reason is Reason.SCORE_ABOVE_THRESHOLD

"""The shipped default bundle (engines/edge-default) through the runtime the daemon uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashfas_edge.inference.backend import ATTACK_TYPES
from flashfas_edge.inference.bundle import RoutingConfig, load_bundle
from flashfas_edge.inference.factory import create_backend

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "engines" / "edge-default"

pytestmark = pytest.mark.skipif(
    not (DEFAULT_BUNDLE / "manifest.json").is_file(),
    reason="engines/edge-default has not been exported yet (training engineer's deliverable)",
)


def test_default_bundle_is_valid_and_matches_the_pipeline_contract():
    from flashfas_edge import _core

    bundle = load_bundle(DEFAULT_BUNDLE)
    assert bundle.n0 == 5 and bundle.n_diff == 6
    assert bundle.normalisation.get("method") == str(_core.NORMALISATION)
    assert 0.0 < bundle.threshold_default < 1.0


def test_default_bundle_records_the_challenge_it_was_trained_on():
    from flashfas_edge.pipeline.config import ChallengeConfig

    bundle = load_bundle(DEFAULT_BUNDLE)
    assert bundle.challenge_recorded
    assert bundle.flash_levels == (1.0, 0.75, 0.5, 0.25, 0.0) == ChallengeConfig().levels
    assert bundle.challenge_family == "white_levels"
    # every member's training data says the same (the ensemble's provenance)
    for member in bundle.manifest["provenance"]["members"]:
        assert member["provenance"]["data"]["dataset"]["levels"] == list(bundle.flash_levels)


def test_default_bundle_runs_one_check_through_onnxruntime():
    backend = create_backend(DEFAULT_BUNDLE, "onnxruntime")
    x = np.random.default_rng(0).normal(0, 1, backend.bundle.input_shape).astype(np.float32)
    out = backend.run(x)
    assert 0.0 <= out.p_live <= 1.0
    assert set(out.type_probs) == set(ATTACK_TYPES)
    assert out.depth.shape == (backend.bundle.depth_size,) * 2
    assert np.isfinite(out.depth).all()


def test_default_bundle_sparse_routing_never_runs_more_experts_than_dense():
    bundle = load_bundle(DEFAULT_BUNDLE)
    sparse = create_backend(bundle, "onnxruntime", routing=RoutingConfig(True, 0.9))
    xs = np.random.default_rng(1).normal(0, 1, (4, *bundle.input_shape)).astype(np.float32)
    for out in sparse.run_batch(xs):
        assert 1 <= len(out.experts_run) <= len(ATTACK_TYPES)
        if len(out.experts_run) == 1:
            assert max(out.type_probs.values()) >= 0.9

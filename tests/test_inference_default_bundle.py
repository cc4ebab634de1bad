"""The shipped bundles through the runtime the daemon uses: the default (engines/edge-default) and
the mask-resistant option (engines/edge-masks), each against the pipeline's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashfas_edge.inference.backend import ATTACK_TYPES
from flashfas_edge.inference.bundle import RoutingConfig, load_bundle
from flashfas_edge.inference.factory import create_backend

ENGINES = Path(__file__).resolve().parents[1] / "engines"
SHIPPED = ("edge-default", "edge-masks")


@pytest.fixture(params=SHIPPED)
def shipped(request) -> Path:
    folder = ENGINES / request.param
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"engines/{request.param} is not in this checkout")
    return folder


def test_shipped_bundle_is_valid_and_matches_the_pipeline_contract(shipped):
    from flashfas_edge import _core

    bundle = load_bundle(shipped)
    assert bundle.n0 == 5 and bundle.n_diff == 6
    assert bundle.normalisation.get("method") == str(_core.NORMALISATION)
    assert 0.0 < bundle.threshold_default < 1.0


def test_shipped_bundle_records_the_challenge_it_was_trained_on(shipped):
    from flashfas_edge.pipeline.config import ChallengeConfig

    bundle = load_bundle(shipped)
    assert bundle.challenge_recorded
    assert bundle.flash_levels == (1.0, 0.75, 0.5, 0.25, 0.0) == ChallengeConfig().levels
    assert bundle.challenge_family == "white_levels"
    # every member's training data says the same (the ensemble's provenance)
    for member in bundle.manifest["provenance"]["members"]:
        assert member["provenance"]["data"]["dataset"]["levels"] == list(bundle.flash_levels)


def test_shipped_bundle_runs_one_check_through_onnxruntime(shipped):
    backend = create_backend(shipped, "onnxruntime")
    x = np.random.default_rng(0).normal(0, 1, backend.bundle.input_shape).astype(np.float32)
    out = backend.run(x)
    assert 0.0 <= out.p_live <= 1.0
    assert set(out.type_probs) == set(ATTACK_TYPES)
    assert out.depth.shape == (backend.bundle.depth_size,) * 2
    assert np.isfinite(out.depth).all()


def test_shipped_bundle_sparse_routing_never_runs_more_experts_than_dense(shipped):
    bundle = load_bundle(shipped)
    sparse = create_backend(bundle, "onnxruntime", routing=RoutingConfig(True, 0.9))
    xs = np.random.default_rng(1).normal(0, 1, (4, *bundle.input_shape)).astype(np.float32)
    for out in sparse.run_batch(xs):
        assert 1 <= len(out.experts_run) <= len(ATTACK_TYPES)
        if len(out.experts_run) == 1:
            assert max(out.type_probs.values()) >= 0.9


def test_the_mask_bundle_records_both_renderers_it_was_trained_on():
    folder = ENGINES / "edge-masks"
    if not (folder / "manifest.json").is_file():
        pytest.skip("engines/edge-masks is not in this checkout")
    bundle = load_bundle(folder)
    paths = [entry["path"] for member in bundle.manifest["provenance"]["members"]
             for entry in (member["provenance"]["data"],
                           *member["provenance"]["data"]["extra_train"])]
    assert paths and not any(Path(path).is_absolute() for path in paths)  # relative paths only
    for member in bundle.manifest["provenance"]["members"]:
        data = member["provenance"]["data"]
        assert data["dataset"]["physics"] == "spectral"
        assert [e["dataset"]["physics"] for e in data["extra_train"]] == ["rgb"]
        assert data["dataset"]["levels"] == list(bundle.flash_levels)

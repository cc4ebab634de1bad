"""ONNX Runtime backend: same numbers as the exported ONNX files run directly, typed failures."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from flashfas_edge.inference.backend import ATTACK_TYPES, Backend, BackendError
from flashfas_edge.inference.bundle import RoutingConfig
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_synthetic_bundle(tmp_path_factory.mktemp("bundle"), input_size=32, seed=3)


@pytest.fixture(scope="module")
def backend(bundle_dir):
    return OrtBackend(bundle_dir, intra_op_threads=1)


def _check_input(seed: int, n_diff: int = 6, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n_diff, 3, size, size)).astype(np.float32)


def _reference(bundle_dir, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The modules run directly with plain sessions, mixed with explicit loops (ATR-FAS §3.4)."""

    def run(name, feed):
        session = ort.InferenceSession(str(bundle_dir / f"{name}.onnx"))
        return session.run(None, feed)[0]

    feat = run("stem", {"x": x[None]})
    logits = run("type_gate", {"feat": feat})[0].astype(np.float64)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    depths = [run(f"expert_{t}", {"feat": feat})[0] for t in ATTACK_TYPES]
    attention = run("attention_gate", {"feat": feat})[0]
    n, d = attention.shape[0], attention.shape[1]
    final = np.zeros((d, d))
    for frame in range(n):
        mixed = sum(weights[m] * depths[m][frame] for m in range(len(ATTACK_TYPES)))
        final += attention[frame] * mixed
    logit = run("head", {"depth": final[None, None].astype(np.float32)})[0, 0]
    return 1.0 / (1.0 + np.exp(-logit)), weights, final


def test_ort_backend_matches_the_onnx_files_run_directly(bundle_dir, backend):
    x = _check_input(1)
    out = backend.run(x)
    p_live, weights, final = _reference(bundle_dir, x)
    assert out.p_live == pytest.approx(p_live, abs=1e-5)
    assert [out.type_probs[t] for t in ATTACK_TYPES] == pytest.approx(list(weights), abs=1e-6)
    assert out.depth.shape == (8, 8) and out.depth.dtype == np.float32
    np.testing.assert_allclose(out.depth, final, atol=1e-5)
    assert out.experts_run == ATTACK_TYPES
    assert 0.0 <= out.depth.min() and out.depth.max() <= 1.0


def test_batched_run_gives_the_same_outputs_as_one_check_at_a_time(backend):
    xs = np.stack([_check_input(seed) for seed in range(4)])
    batched = backend.run_batch(xs)
    for x, out in zip(xs, batched, strict=True):
        single = backend.run(x)
        assert out.p_live == pytest.approx(single.p_live, abs=1e-6)
        np.testing.assert_allclose(out.depth, single.depth, atol=1e-6)


def test_backend_exposes_the_bundle_facts_the_pipeline_needs(backend):
    assert isinstance(backend, Backend)
    facts = backend.bundle
    assert (facts.n0, facts.n_diff, facts.input_size, facts.depth_size) == (5, 6, 32, 8)
    assert facts.name == "synthetic-test" and len(facts.manifest_sha256) == 64
    assert facts.threshold_default == 0.5 and facts.normalisation == {"method": "synthetic-test"}
    info = backend.info()
    assert (info.name, info.device, info.precision) == ("onnxruntime", "cpu", "fp32")
    assert info.versions["onnxruntime"] == ort.__version__
    assert info.versions["bundle_manifest_sha256"] == facts.manifest_sha256


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((6, 3, 32, 16), np.float32), "expects"),
        (np.zeros((4, 3, 32, 32), np.float32), "expects"),
        (np.zeros((6, 3, 32, 32), np.float64), "float32"),
        (np.full((6, 3, 32, 32), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_input_is_a_typed_error_never_a_score(backend, bad, message):
    with pytest.raises(BackendError, match=message):
        backend.run(bad)


def test_sparse_routing_runs_only_the_confident_expert(tmp_path):
    # A large gate bias towards "replay" makes its softmax weight ≈ 1 for any input.
    bundle_dir = write_synthetic_bundle(tmp_path / "b", input_size=32, gate_bias=(0.0, 12.0, 0.0))
    dense = OrtBackend(bundle_dir, intra_op_threads=1, routing=RoutingConfig(sparse=False))
    sparse = OrtBackend(
        bundle_dir, intra_op_threads=1, routing=RoutingConfig(sparse=True, min_top_weight=0.99)
    )
    x = _check_input(7)
    dense_out, sparse_out = dense.run(x), sparse.run(x)
    assert sparse_out.experts_run == ("replay",)
    assert dense_out.experts_run == ATTACK_TYPES
    assert dense_out.type_probs["replay"] > 0.99
    # Skipping experts worth < 1 % of the mix moves the score by little, not by nothing.
    assert sparse_out.p_live == pytest.approx(dense_out.p_live, abs=0.02)
    assert sparse_out.type_probs == dense_out.type_probs


def test_sparse_routing_keeps_every_expert_when_the_gate_is_unsure(tmp_path):
    bundle_dir = write_synthetic_bundle(tmp_path / "b", input_size=32, gate_bias=(0.0, 0.0, 0.0))
    dense = OrtBackend(bundle_dir, intra_op_threads=1)
    sparse = OrtBackend(
        bundle_dir, intra_op_threads=1, routing=RoutingConfig(sparse=True, min_top_weight=0.99)
    )
    xs = np.stack([_check_input(seed) for seed in range(3)])
    for d_out, s_out in zip(dense.run_batch(xs), sparse.run_batch(xs), strict=True):
        assert s_out.experts_run == ATTACK_TYPES
        assert s_out.p_live == d_out.p_live


def test_gates_may_read_the_raw_input_as_the_manifest_lists(tmp_path):
    bundle_dir = write_synthetic_bundle(tmp_path / "b", input_size=32, gate_inputs="x")
    backend = OrtBackend(bundle_dir, intra_op_threads=1)
    assert backend.bundle.modules["type_gate"].inputs == ("x",)
    out = backend.run(_check_input(2))
    assert 0.0 < out.p_live < 1.0
    assert sum(out.type_probs.values()) == pytest.approx(1.0)

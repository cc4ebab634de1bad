"""ATR-FAS §3.4 mixing and sparse routing, on small hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.inference.mixing import mix_depth, route_experts, sigmoid, softmax


def test_dense_routing_runs_every_expert_with_the_gate_weights():
    weights = np.array([[0.2, 0.5, 0.3], [0.98, 0.01, 0.01]])
    mask, mixing = route_experts(weights, sparse=False, min_top_weight=0.95)
    assert mask.all()
    np.testing.assert_allclose(mixing, weights, rtol=1e-6)


def test_sparse_routing_skips_experts_only_for_confident_samples():
    weights = np.array([[0.2, 0.5, 0.3], [0.01, 0.01, 0.98], [0.0, 0.95, 0.05]])
    mask, mixing = route_experts(weights, sparse=True, min_top_weight=0.95)
    assert mask.tolist() == [[True, True, True], [False, False, True], [False, True, False]]
    np.testing.assert_allclose(mixing[0], weights[0], rtol=1e-6)
    np.testing.assert_allclose(mixing[1:], [[0, 0, 1], [0, 1, 0]])  # renormalised to 1


def test_mixing_is_the_gate_weighted_expert_sum_then_the_attention_weighted_frame_sum():
    rng = np.random.default_rng(0)
    depths = rng.uniform(0, 1, (2, 3, 4, 5, 5)).astype(np.float32)  # [B, M, N, D, D]
    weights = softmax(rng.normal(size=(2, 3)))
    attention = softmax(rng.normal(size=(2, 4, 5, 5)), axis=1)
    out = mix_depth(depths, weights.astype(np.float32), attention.astype(np.float32))
    for b in range(2):
        expected = np.zeros((5, 5))
        for n in range(4):
            mixed = sum(weights[b, m] * depths[b, m, n] for m in range(3))
            expected += attention[b, n] * mixed
        np.testing.assert_allclose(out[b], expected, rtol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0  # convex combinations of [0, 1] maps


def test_sigmoid_is_stable_for_large_logits():
    values = sigmoid(np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0]))
    assert np.isfinite(values).all()
    assert values[0] == 0.0 and values[2] == 0.5 and values[-1] == 1.0
    assert values[1] == pytest.approx(1 - values[3])

"""The ONNX Runtime softmax rewrite: same numbers, only non-last axes, files never touched."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from flashfas_edge.inference.bundle import load_bundle
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.inference.ort_softmax_rewrite import decompose_non_last_axis_softmax
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle


def _softmax_model(axis: int, opset: int = 17) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 4, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 4, 3])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=axis)], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("axis", [0, 1, 2, -2])
def test_softmax_on_a_middle_axis_is_rewritten_to_the_same_function(axis):
    x = np.random.default_rng(0).normal(0, 4, (2, 5, 4, 3)).astype(np.float32)
    reference = _run(_softmax_model(axis), x)
    model = _softmax_model(axis)
    assert decompose_non_last_axis_softmax(model) == 1
    onnx.checker.check_model(model)
    assert "Softmax" not in [n.op_type for n in model.graph.node]
    np.testing.assert_allclose(_run(model, x), reference, atol=1e-6)


@pytest.mark.parametrize("axis", [3, -1])
def test_softmax_on_the_last_axis_is_left_alone(axis):
    model = _softmax_model(axis)
    assert decompose_non_last_axis_softmax(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Softmax"]


def test_old_opsets_with_flattening_softmax_are_left_alone():
    model = _softmax_model(1, opset=11)
    assert decompose_non_last_axis_softmax(model) == 0


def test_backend_rewrites_in_memory_and_agrees_with_the_untouched_files(tmp_path):
    bundle_dir = write_synthetic_bundle(tmp_path / "b", input_size=32)
    before = {p.name: p.read_bytes() for p in bundle_dir.iterdir()}
    fast = OrtBackend(bundle_dir, intra_op_threads=1)
    plain = OrtBackend(bundle_dir, intra_op_threads=1, rewrite_softmax=False)
    assert fast.runner.softmax_rewrites == 4  # three experts + the attention gate
    assert fast.info().versions["softmax_rewrites"] == "4"
    xs = np.random.default_rng(1).normal(0, 1, (3, 6, 3, 32, 32)).astype(np.float32)
    for a, b in zip(fast.run_batch(xs), plain.run_batch(xs), strict=True):
        assert a.p_live == pytest.approx(b.p_live, abs=1e-6)
        np.testing.assert_allclose(a.depth, b.depth, atol=1e-6)
    assert {p.name: p.read_bytes() for p in bundle_dir.iterdir()} == before
    load_bundle(bundle_dir)  # still valid: every sha256 unchanged

"""Bundle validation: the daemon never runs a model it cannot vouch for; errors name the file."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from flashfas_edge.inference.bundle import MODULE_NAMES, BundleError, load_bundle
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_synthetic_bundle(tmp_path_factory.mktemp("pristine"), input_size=32)


@pytest.fixture
def bundle_dir(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "bundle")


def _edit_manifest(bundle_dir, edit):
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_a_valid_bundle_loads_with_its_facts(bundle_dir):
    bundle = load_bundle(bundle_dir, expect_n0=5, expect_input_size=32)
    assert set(bundle.modules) == set(MODULE_NAMES)
    assert bundle.input_shape == (6, 3, 32, 32)
    raw = (bundle_dir / "manifest.json").read_bytes()
    assert bundle.manifest_sha256 == hashlib.sha256(raw).hexdigest()


def test_missing_module_file_names_the_file(bundle_dir):
    (bundle_dir / "expert_mask.onnx").unlink()
    with pytest.raises(BundleError, match=r"expert_mask\.onnx.*missing"):
        load_bundle(bundle_dir)


def test_missing_manifest_names_the_file(bundle_dir):
    (bundle_dir / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json: manifest is missing"):
        load_bundle(bundle_dir)


def test_altered_module_is_a_hash_mismatch_naming_the_file(bundle_dir):
    path = bundle_dir / "head.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"head\.onnx: sha256 mismatch"):
        load_bundle(bundle_dir)


def test_wrong_format_version_is_refused(bundle_dir):
    _edit_manifest(bundle_dir, lambda m: m.update(format_version=3))
    with pytest.raises(BundleError, match=r"manifest\.json: format_version 3 is not supported"):
        load_bundle(bundle_dir)


def test_format_2_without_an_ensemble_block_is_refused(bundle_dir):
    _edit_manifest(bundle_dir, lambda m: m.update(format_version=2))
    with pytest.raises(BundleError, match=r"format_version 2 needs an 'ensemble' object"):
        load_bundle(bundle_dir)


def test_an_ensemble_block_in_a_format_1_manifest_is_refused(bundle_dir):
    # a reader that ignored it would run member 0 alone at the ensemble's threshold
    _edit_manifest(bundle_dir, lambda m: m.update(ensemble={"members": 2, "combine": "mean_logit"}))
    with pytest.raises(BundleError, match=r"'ensemble' block needs format_version 2"):
        load_bundle(bundle_dir)


def test_bundle_for_another_n0_is_refused(bundle_dir):
    with pytest.raises(BundleError, match=r"manifest\.json: bundle was trained for n0 = 5.*n0 = 4"):
        load_bundle(bundle_dir, expect_n0=4)


def test_inconsistent_n_diff_is_refused(bundle_dir):
    _edit_manifest(bundle_dir, lambda m: m.update(n_diff=5))
    with pytest.raises(BundleError, match=r"n_diff = 5 but n0 = 5 needs 6"):
        load_bundle(bundle_dir)


def test_bundle_for_another_input_size_is_refused(bundle_dir):
    with pytest.raises(BundleError, match=r"manifest\.json: bundle input_size = 32.*128"):
        load_bundle(bundle_dir, expect_input_size=128)


def test_manifest_input_size_that_the_onnx_files_contradict_is_refused(bundle_dir):
    _edit_manifest(bundle_dir, lambda m: m.update(input_size=64, depth_size=16))
    with pytest.raises(BundleError, match=r"stem\.onnx: tensor 'x' has shape"):
        load_bundle(bundle_dir)


def test_other_normalisation_is_refused(bundle_dir):
    with pytest.raises(BundleError, match="normalisation"):
        load_bundle(bundle_dir, expect_normalisation={"method": "per-frame-zscore"})


def test_onnx_tensor_names_that_differ_from_the_manifest_are_refused(bundle_dir, tmp_path):
    # A head whose output is called "score": real ONNX file, correct sha256, wrong contract.
    other = write_synthetic_bundle(tmp_path / "other", input_size=32)
    import onnx

    model = onnx.load(str(other / "head.onnx"))
    model.graph.node[-1].output[0] = "score"
    model.graph.output[0].name = "score"
    (bundle_dir / "head.onnx").write_bytes(model.SerializeToString())
    digest = hashlib.sha256((bundle_dir / "head.onnx").read_bytes()).hexdigest()
    _edit_manifest(bundle_dir, lambda m: m["modules"]["head"].update(sha256=digest))
    expected = r"head\.onnx: ONNX inputs \['depth'\] / outputs \['score'\]"
    with pytest.raises(BundleError, match=expected):
        load_bundle(bundle_dir)


def test_manifest_that_lists_wrong_tensor_names_is_refused(bundle_dir):
    _edit_manifest(bundle_dir, lambda m: m["modules"]["stem"].update(outputs=["features"]))
    with pytest.raises(BundleError, match=r"module 'stem' lists inputs"):
        load_bundle(bundle_dir)


def test_module_file_outside_the_bundle_is_refused(bundle_dir):
    _edit_manifest(bundle_dir, lambda m: m["modules"]["stem"].update(file="../stem.onnx"))
    with pytest.raises(BundleError, match="leaves the bundle"):
        load_bundle(bundle_dir)


def test_corrupt_manifest_names_the_file(bundle_dir):
    (bundle_dir / "manifest.json").write_text("{ not json")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5, float("nan"), "0.5"])
def test_a_threshold_that_would_accept_everyone_or_is_not_a_probability_is_refused(
    bundle_dir, threshold
):
    _edit_manifest(bundle_dir, lambda m: m.__setitem__("threshold", {"default": threshold}))
    with pytest.raises(BundleError, match=r"manifest\.json: threshold\.default"):
        load_bundle(bundle_dir)


def test_the_manifest_records_the_challenge_the_bundle_was_trained_on(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.flash_levels == (1.0, 0.75, 0.5, 0.25, 0.0)
    assert bundle.challenge_family == "white_levels" and bundle.challenge_recorded


def test_a_bundle_without_challenge_fields_reads_as_the_historical_default(bundle_dir):
    def drop(m):
        del m["flash_levels"], m["challenge_family"]

    _edit_manifest(bundle_dir, drop)
    bundle = load_bundle(bundle_dir)
    assert bundle.flash_levels == (1.0, 0.75, 0.5, 0.25, 0.0)
    assert bundle.challenge_family == "white_levels" and not bundle.challenge_recorded


def test_only_n0_5_bundles_may_omit_their_levels(tmp_path):
    folder = write_synthetic_bundle(tmp_path / "n4", n0=4, input_size=32)
    assert load_bundle(folder).flash_levels == pytest.approx((1.0, 2 / 3, 1 / 3, 0.0), abs=1e-6)
    _edit_manifest(folder, lambda m: m.pop("flash_levels"))
    with pytest.raises(BundleError, match=r"n0 = 4 but no 'flash_levels'"):
        load_bundle(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"flash_levels": [1.0, 0.5, 0.0]}, r"3 flash_levels but n0 = 5"),
        ({"flash_levels": [0.0, 0.25, 0.5, 0.75, 1.0]}, r"brightest first"),
        ({"flash_levels": [1.0, 0.75, 0.5, 0.5, 0.0]}, r"distinct"),
        ({"flash_levels": [1.0, 0.75, 0.5, 0.25, -0.1]}, r"\[0, 1\]"),
        ({"flash_levels": "1,0.5,0"}, r"list of numbers"),
        ({"challenge_family": "strobe"}, r"challenge family 'strobe' is not one of"),
    ],
)
def test_a_bad_challenge_record_is_refused(bundle_dir, edit, message):
    _edit_manifest(bundle_dir, lambda m: m.update(edit))
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_dir)


def test_a_retry_band_edge_is_read_and_one_above_the_threshold_is_refused(bundle_dir):
    assert load_bundle(bundle_dir).spoof_below is None  # no band: below the threshold is spoof

    def band(edge):
        return lambda m: m.__setitem__("threshold", {"default": 0.9, "spoof_below": edge})

    _edit_manifest(bundle_dir, band(0.4))
    assert load_bundle(bundle_dir).spoof_below == 0.4
    for edge in (0.95, 0.0, "0.4", True):
        _edit_manifest(bundle_dir, band(edge))
        with pytest.raises(BundleError, match=r"threshold\.spoof_below"):
            load_bundle(bundle_dir)

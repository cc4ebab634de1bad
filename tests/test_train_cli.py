"""`flashfas-edge train | export | eval` end to end on a handful of rendered sessions.

Real parts only: the renderer writes a small dataset (``flashfas-edge synth``), a tiny config
trains on it in a subprocess, the export is loaded by the daemon's ONNX Runtime backend, and eval
scores the bundle through that backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    done = _cli(
        "synth",
        "--out",
        str(out),
        "--n",
        "40",
        "--seed",
        "3",
        "--split-protocol",
        "random",
        "--width",
        "320",
        "--height",
        "240",
        "--workers",
        "1",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def trained_run(dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    done = _cli(
        "train",
        "--config",
        "tiny",
        "--data",
        str(dataset),
        "--out",
        str(run),
        "--epochs",
        "3",
        "--threads",
        "1",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    return run


def test_training_on_rendered_sessions_reduces_the_loss(trained_run):
    history = json.loads((trained_run / "history.json").read_text())
    assert len(history) == 3
    assert history[-1]["train_total"] < history[0]["train_total"]
    assert (trained_run / "best.pt").is_file() and (trained_run / "last.pt").is_file()


def test_export_writes_a_bundle_the_daemon_backend_loads_with_matching_outputs(
    trained_run, dataset, tmp_path
):
    bundle = tmp_path / "bundle"
    done = _cli(
        "export",
        "--checkpoint",
        str(trained_run / "best.pt"),
        "--out",
        str(bundle),
        "--data",
        str(dataset),
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    parity = manifest["provenance"]["parity"]
    assert parity["max_abs_p_live"] < 1e-5 and parity["max_abs_depth"] < 1e-5
    assert manifest["provenance"]["data_seed"] == 3
    assert manifest["normalisation"]["method"] == "global_rms"
    # the challenge it was trained on, as the rendered dataset recorded it
    assert manifest["flash_levels"] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert manifest["challenge_family"] == "white_levels"

    report_dir = tmp_path / "eval"
    done = _cli("eval", "--model", str(bundle), "--data", str(dataset), "--out", str(report_dir))
    assert done.returncode == 0, done.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["kind"] == "bundle" and report["model"]["backend"] == "onnxruntime"
    assert report["threshold"]["source"] == "dev EER"
    test = report["test"]
    assert 0.0 <= test["hter"] <= 1.0 and set(test["apcer"]) <= {"print", "replay", "mask"}
    assert (report_dir / "det.png").stat().st_size > 1000

    # A lone test split: the threshold comes from the bundle (fixed on dev at training time).
    done = _cli(
        "eval",
        "--model",
        str(bundle),
        "--data",
        str(dataset / "test"),
        "--json",
        "--out",
        str(tmp_path / "eval-test-only"),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threshold"]["value"] == pytest.approx(
        manifest["threshold"]["default"]
    )


def test_checkpoint_eval_and_bad_inputs_fail_with_a_clear_message(trained_run, dataset, tmp_path):
    done = _cli(
        "eval",
        "--model",
        str(trained_run / "best.pt"),
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "ev"),
    )
    assert done.returncode == 0, done.stderr
    assert "HTER" in done.stdout
    done = _cli("eval", "--model", str(tmp_path / "nothing"), "--data", str(dataset))
    assert done.returncode == 1 and "neither a bundle" in done.stderr
    done = _cli("train", "--config", "no-such", "--data", str(dataset), "--out", str(tmp_path))
    assert done.returncode == 1 and "unknown config" in done.stderr


def test_extra_training_folders_are_added_to_the_training_split(dataset, tmp_path):
    import torch

    run = tmp_path / "run"
    common = (
        "--config",
        "tiny",
        "--data",
        str(dataset),
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--threads",
        "1",
        "--no-progress",
    )
    done = _cli("train", *common, "--out", str(run), "--extra-train", str(dataset / "dev"))
    assert done.returncode == 0, done.stderr
    data = torch.load(run / "last.pt", weights_only=False)["data"]
    assert [extra["path"] for extra in data["extra_train"]] == [str((dataset / "dev").resolve())]
    assert data["extra_train"][0]["dataset"]["seed"] == 3  # the writer's dataset.json
    base = tmp_path / "base"
    done = _cli("train", *common, "--out", str(base))
    assert done.returncode == 0, done.stderr
    alone = torch.load(base / "last.pt", weights_only=False)["data"]
    assert data["train"] == alone["train"] + alone["dev"]
    done = _cli(
        "train", *common, "--out", str(tmp_path / "x"), "--extra-train", str(tmp_path / "missing")
    )
    assert done.returncode == 1 and "no such training split folder" in done.stderr


def test_init_from_fine_tunes_another_runs_weights_and_records_them(trained_run, dataset, tmp_path):
    import hashlib

    import torch

    parent = trained_run / "best.pt"
    common = ("--data", str(dataset), "--epochs", "1", "--max-steps", "1", "--threads", "1",
              "--no-progress")
    done = _cli("train", "--config", "tiny", *common, "--out", str(tmp_path / "ft"),
                "--init-from", str(parent))
    assert done.returncode == 0, done.stderr
    state = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)
    origin = state["data"]["init_from"]
    assert origin["sha256"] == hashlib.sha256(parent.read_bytes()).hexdigest()
    assert origin["config"] == "tiny" and origin["seed"] == 0
    assert [r["epoch"] for r in state["history"]] == [1]  # a run of its own, not a resume
    done = _cli("train", "--config", "tiny", *common, "--out", str(tmp_path / "x"),
                "--init-from", str(tmp_path / "missing.pt"))
    assert done.returncode == 1 and "does not exist" in done.stderr


@pytest.fixture(scope="module")
def two_member_bundles(trained_run, dataset, tmp_path_factory) -> list[Path]:
    """The trained tiny run and a second seed of it, each exported as a single-network bundle."""
    root = tmp_path_factory.mktemp("members")
    second = root / "run-s1"
    done = _cli(
        "train", "--config", "tiny", "--data", str(dataset), "--out", str(second),
        "--epochs", "1", "--seed", "1", "--threads", "1", "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    bundles = []
    for k, run in enumerate((trained_run, second)):
        bundle = root / f"b{k}"
        done = _cli("export", "--checkpoint", str(run / "best.pt"), "--out", str(bundle))
        assert done.returncode == 0, done.stderr
        bundles.append(bundle)
    return bundles


def test_ensemble_bundle_averages_member_logits_through_the_daemon_backend(
    two_member_bundles, dataset, tmp_path
):
    import numpy as np

    from flashfas_edge.inference.bundle import load_bundle
    from flashfas_edge.inference.factory import create_backend

    out = tmp_path / "ens"
    members = [a for b in two_member_bundles for a in ("--member", str(b))]
    done = _cli("ensemble", *members, "--data", str(dataset), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 members" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["ensemble"] == {"members": 2, "combine": "mean_logit"}
    assert manifest["modules"]["m1.head"]["file"] == "m1/head.onnx"
    assert "dev EER of the ensemble" in manifest["threshold"]["source"]
    assert manifest["provenance"]["parity"]["max_abs_p_live"] < 1e-9
    assert 0.0 < manifest["threshold"]["default"] <= 1.0

    # The combined output is sigmoid(mean logit) of the members, each run on its own.
    bundle = load_bundle(out)
    assert len(bundle.members) == 2 and len(bundle.modules) == 14
    ensemble = create_backend(bundle, "onnxruntime")
    alone = [create_backend(b, "onnxruntime") for b in two_member_bundles]
    x = np.random.default_rng(5).normal(0, 1, (3, *bundle.input_shape)).astype(np.float32)
    logits = [
        [np.log(o.p_live) - np.log1p(-o.p_live) for o in backend.run_batch(x)] for backend in alone
    ]
    expected = 1 / (1 + np.exp(-np.mean(logits, axis=0)))
    got = [o.p_live for o in ensemble.run_batch(x)]
    np.testing.assert_allclose(got, expected, atol=1e-9)

    # eval scores the ensemble like any bundle
    done = _cli("eval", "--model", str(out), "--data", str(dataset), "--out", str(tmp_path / "ev"))
    assert done.returncode == 0, done.stderr


def test_the_threshold_for_the_worst_attack_type_and_its_retry_band(
    two_member_bundles, dataset, tmp_path
):
    """``ensemble --target-apcer`` and ``threshold``: every attack type's dev APCER within the
    target, the EER point kept as the retry band's lower edge; ``threshold`` rewrites only the
    manifest's threshold and dev provenance, and a dataset without dev leaves it untouched."""
    import shutil

    import numpy as np

    from flashfas_edge.inference.bundle import load_bundle
    from flashfas_edge.train.evaluate import BundleScorer
    from flashfas_edge.train.splits import find_split, load_split_for

    out = tmp_path / "ens"
    members = [a for b in two_member_bundles for a in ("--member", str(b))]
    done = _cli("ensemble", *members, "--data", str(dataset), "--out", str(out),
                "--target-apcer", "0.01")
    assert done.returncode == 0, done.stderr
    threshold = json.loads((out / "manifest.json").read_text())["threshold"]
    assert threshold["target_apcer"] == 0.01
    assert 0.0 < threshold["spoof_below"] <= threshold["default"] <= 1.0
    scorer = BundleScorer(out)
    dev = load_split_for(find_split(dataset, "dev"), scorer.model_config, None)
    scores, labels = scorer.score(dev), np.asarray(dev.labels)
    for kind in set(dev.labels) - {"live"}:  # a handful each: none may pass
        assert (scores[labels == kind] < threshold["default"]).all(), kind
    assert load_bundle(out).spoof_below == threshold["spoof_below"]

    single = shutil.copytree(two_member_bundles[0], tmp_path / "single")
    before = json.loads((single / "manifest.json").read_text())
    done = _cli("threshold", "--model", str(single), "--data", str(dataset),
                "--target-apcer", "0.01")
    assert done.returncode == 0, done.stderr
    assert "retry from" in done.stdout and "dev BPCER" in done.stdout
    after = json.loads((single / "manifest.json").read_text())
    assert after["threshold"]["target_apcer"] == 0.01
    assert after["provenance"]["dev"]["apcer"] == {k: 0.0 for k in after["provenance"]["dev"][
        "apcer"]}
    assert {k: v for k, v in after.items() if k not in ("threshold", "provenance")} == {
        k: v for k, v in before.items() if k not in ("threshold", "provenance")}
    # without a target: the dev EER point again, no band
    assert _cli("threshold", "--model", str(single), "--data", str(dataset)).returncode == 0
    plain = json.loads((single / "manifest.json").read_text())["threshold"]
    assert "spoof_below" not in plain and plain["default"] == pytest.approx(
        after["threshold"]["spoof_below"])
    empty = tmp_path / "no-sessions"
    (empty / "dev").mkdir(parents=True)
    text = (single / "manifest.json").read_text()
    done = _cli("threshold", "--model", str(single), "--data", str(empty), "--target-apcer",
                "0.01")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (single / "manifest.json").read_text() == text


def test_ensemble_refuses_mismatched_members_and_altered_member_files(
    two_member_bundles, dataset, tmp_path
):
    from flashfas_edge.inference.bundle import BundleError, load_bundle
    from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle

    other = write_synthetic_bundle(tmp_path / "other", input_size=64)
    done = _cli(
        "ensemble", "--member", str(two_member_bundles[0]), "--member", str(other),
        "--data", str(dataset), "--out", str(tmp_path / "bad"),
    )
    assert done.returncode == 1 and "members must share the input contract" in done.stderr

    members = [a for b in two_member_bundles for a in ("--member", str(b))]
    empty = tmp_path / "no-sessions"
    (empty / "dev").mkdir(parents=True)
    done = _cli("ensemble", *members, "--data", str(empty), "--out", str(tmp_path / "half"))
    assert done.returncode == 1 and "has no index.json" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "half").exists()  # no bundle left with an unfixed threshold

    out = tmp_path / "ens"
    assert _cli("ensemble", *members, "--data", str(dataset), "--out", str(out)).returncode == 0
    done = _cli("ensemble", *members, "--data", str(dataset), "--out", str(out))
    assert done.returncode == 1 and "not empty" in done.stderr

    tampered = out / "m1" / "head.onnx"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(BundleError, match=r"m1/head\.onnx: sha256 mismatch for module 'm1\.head'"):
        load_bundle(out)
    tampered.write_bytes(tampered.read_bytes()[:-1])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["modules"]["m2.head"] = manifest["modules"]["m1.head"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"belong to no ensemble member"):
        load_bundle(out)


def test_a_bundle_reads_back_into_its_network_and_fine_tunes(
    two_member_bundles, trained_run, dataset, tmp_path
):
    """Export folds every BatchNorm into its conv; the network read back from the ONNX files
    computes what the checkpoint did, and re-parameterised BatchNorms keep that function while
    normalising training batches as the eval-mode network does."""
    import copy

    import torch

    from flashfas_edge.train.from_bundle import (
        RecoveryError,
        model_from_bundle,
        recalibrate_batchnorm,
    )
    from flashfas_edge.train.trainer import load_checkpoint, model_from_checkpoint

    recovered = model_from_bundle(two_member_bundles[0])
    assert max(recovered.provenance["parity_max_abs"].values()) < 1e-4
    original, _ = model_from_checkpoint(load_checkpoint(trained_run / "best.pt"))
    size = recovered.config.model.input_size
    x = torch.randn(4, 6, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = original(x).logit
        got = recovered.model.eval()(x).logit
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        calibration = torch.randn(16, 6, 3, size, size, generator=torch.Generator().manual_seed(2))
        assert recalibrate_batchnorm(recovered.model, calibration) > 0
        torch.testing.assert_close(recovered.model(x).logit, want, atol=1e-4, rtol=1e-4)
        # a batch drawn like the calibration inputs (here: the same) is normalised alike in train
        # mode; before recalibration, train mode computes another function
        in_train = copy.deepcopy(recovered.model).train()(calibration).logit
        in_eval = recovered.model.eval()(calibration).logit
        torch.testing.assert_close(in_train, in_eval, atol=1e-3, rtol=1e-3)
        raw = model_from_bundle(two_member_bundles[0]).model.train()(calibration).logit
        assert float((raw - in_eval).abs().max()) > 1e-2

    with pytest.raises(RecoveryError, match=r"no member 1 \(1 in all\)"):
        model_from_bundle(two_member_bundles[0], member=1)

    # an ensemble member through the CLI: one training step, the origin recorded
    ens = tmp_path / "ens"
    members = [a for b in two_member_bundles for a in ("--member", str(b))]
    assert _cli("ensemble", *members, "--data", str(dataset), "--out", str(ens)).returncode == 0
    common = ("--config", "tiny", "--data", str(dataset), "--epochs", "1", "--max-steps", "1",
              "--threads", "1", "--no-progress", "--init-from", str(ens))
    done = _cli("train", *common, "--init-member", "1", "--out", str(tmp_path / "ft"))
    assert done.returncode == 0, done.stderr
    origin = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["data"]["init_from"]
    assert origin["member"] == 1 and origin["bundle"] == str(ens)
    assert origin["batchnorm_recalibrated_on"] > 0
    done = _cli("train", *common, "--init-member", "2", "--out", str(tmp_path / "bad"))
    assert done.returncode == 1 and "no member 2" in done.stderr
    assert "Traceback" not in done.stderr
    assert load_checkpoint(tmp_path / "ft" / "last.pt")["epoch"] == 0


def test_ablate_trains_scores_and_tabulates_with_extra_training_data(dataset, tmp_path):
    import torch

    out = tmp_path / "ablate"
    done = _cli(
        "ablate", "--configs", "tiny", "--seeds", "0", "--data", str(dataset),
        "--extra-train", str(dataset / "dev"), "--epochs", "1", "--out", str(out),
        "--threads", "1", "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "rows.json").read_text())
    assert [(r["config"], r["seed"], r["epochs"]) for r in rows] == [("tiny", 0, 1)]
    assert 0.0 <= rows[0]["hter"] <= 1.0
    assert "| tiny | 1 |" in (out / "table.md").read_text()
    data = torch.load(out / "tiny-s0" / "best.pt", weights_only=False)["data"]
    assert [e["path"] for e in data["extra_train"]] == [str((dataset / "dev").resolve())]
    assert data["train"] > data["dev"]  # train + the extra dev sessions

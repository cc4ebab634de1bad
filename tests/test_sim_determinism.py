"""Same seed → byte-identical samples, whatever the number of workers; labels are sane."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from flashfas_edge.data.dataset_format import DatasetReader
from flashfas_edge.sim.synth_dataset import SynthJob, generate, render_sample

SMALL = {"width": 128, "height": 96, "shard_size": 2}


def test_the_same_seed_renders_identical_sessions():
    job = SynthJob(out="unused", n=4, seed=5, **SMALL)
    for index in (0, 3):
        a, b = render_sample(job, index), render_sample(job, index)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        np.testing.assert_array_equal(a.depth, b.depth)
        assert a.meta == b.meta and a.nonce == b.nonce
    other = render_sample(SynthJob(out="unused", n=4, seed=6, **SMALL), 0)
    assert not np.array_equal(other.frames, render_sample(job, 0).frames)


def test_worker_count_does_not_change_a_single_byte(tmp_path):
    one = generate(SynthJob(out=str(tmp_path / "w1"), n=5, seed=9, **SMALL), workers=1,
                   progress=False)
    two = generate(SynthJob(out=str(tmp_path / "w2"), n=5, seed=9, **SMALL), workers=2,
                   progress=False)
    assert one["sessions"] == two["sessions"] == 5
    for name in ("shard-00000.npz", "shard-00001.npz", "shard-00002.npz"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()


def test_sessions_carry_the_labels_training_needs(tmp_path):
    generate(SynthJob(out=str(tmp_path), n=6, seed=1, **SMALL), workers=1, progress=False)
    reader = DatasetReader(tmp_path)
    for s in reader.iter_sessions():
        t = s.frames.shape[0]
        assert t >= s.n0 and s.frames.shape[1:] == (96, 128, 3)
        assert s.landmarks.shape == (t, 5, 2) and np.all(np.isfinite(s.landmarks))
        # image-left eye first, eyes above the mouth
        assert np.all(s.landmarks[:, 0, 0] < s.landmarks[:, 1, 0])
        assert np.all(s.landmarks[:, 0, 1] < s.landmarks[:, 3, 1])
        assert s.depth.shape == (64, 64)
        if s.attack_type == "live":
            assert s.depth.min() >= 0 and s.depth.max() == 1.0
        else:
            assert np.all(s.depth == 0.5)
        assert sorted(s.order.tolist()) == list(range(s.n0))
        assert s.flash_intensity[s.order[0]] == s.flash_intensity.max()
        assert s.flash_intensity[s.order[-1]] == 0.0
        assert np.all(np.diff(s.frame_times_us) > 0)
        assert s.meta["split"] == "train" and "scenario" in s.meta


def test_synth_command_writes_splits_and_a_preview(tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "synth", "--out", str(out), "--n", "8",
         "--width", "128", "--height", "96", "--workers", "2", "--preview", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["sessions"] == 8
    assert (out / "preview.png").stat().st_size > 1000
    info = json.loads((out / "dataset.json").read_text())
    assert sum(info["splits"].values()) == 8
    assert {p.name for p in out.iterdir() if p.is_dir()} == {"train", "dev", "test"}


def test_synth_command_refuses_bad_arguments(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "synth", "--out", str(tmp_path), "--n", "0"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--n" in proc.stderr


def test_aligned_cache_equals_the_cache_train_builds_from_the_session_files(tmp_path):
    """``synth --aligned-cache`` skips the session files; what train reads must not change."""
    from flashfas_edge.train.config import ModelConfig
    from flashfas_edge.train.splits import load_split_for

    common = ["--n", "6", "--seed", "4", "--split", "test", "--width", "320", "--height", "240",
              "--workers", "2", "--no-progress"]
    for out, extra in ((tmp_path / "files", []), (tmp_path / "aligned", ["--aligned-cache", "32"])):
        proc = subprocess.run(
            [sys.executable, "-m", "flashfas_edge.cli", "synth", "--out", str(out), *common,
             *extra], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert not list((tmp_path / "aligned" / "test").glob("*.npz"))  # no session files written
    model = ModelConfig(input_size=32)
    from_files = load_split_for(tmp_path / "files" / "test", model, progress=False,
                                keep_aligned=True)
    direct = load_split_for(tmp_path / "aligned" / "test", model, progress=False,
                            keep_aligned=True)
    assert len(direct) == len(from_files) > 0
    assert np.array_equal(direct.aligned, from_files.aligned)
    assert direct.labels == from_files.labels
    assert np.array_equal(direct.depth.numpy(), from_files.depth.numpy())
    seeds = [m["identity_seed"] for m in direct.meta]
    assert seeds == [m["identity_seed"] for m in from_files.meta]
    proc = subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "synth", "--out", str(tmp_path / "x"),
         "--aligned-cache", "64,abc"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--aligned-cache wants sizes" in proc.stderr

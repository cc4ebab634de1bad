"""scripts/merge_splits.py, run as a person runs it: two rendered splits (RGB and spectral physics)
become one split folder that reads back every session of both, in order, without copying a shard;
two splits rendered straight into aligned caches become one cache that training reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from flashfas_edge.data.dataset_format import DatasetReader
from flashfas_edge.train.config import ModelConfig
from flashfas_edge.train.splits import load_split_for

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "merge_splits.py"


def _render(out: Path, seed: int, *extra: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "synth", "--out", str(out), "--n", "3",
         "--seed", str(seed), "--split", "dev", "--width", "128", "--height", "96",
         "--shard-size", "2", "--workers", "1", "--no-progress", *extra],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out / "dev"


def test_two_splits_merge_into_one_that_reads_back_every_session(tmp_path):
    rgb = _render(tmp_path / "rgb", 1)
    spectral = _render(tmp_path / "spec", 2, "--physics", "spectral")
    out = tmp_path / "mixed" / "dev"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), str(rgb), str(spectral)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "6 sessions linked from 2 split(s)" in done.stdout

    merged = DatasetReader(out)
    sources = [DatasetReader(rgb), DatasetReader(spectral)]
    expected = [s for reader in sources for s in (reader[i] for i in range(len(reader)))]
    assert len(merged) == len(expected) == 6
    for i, want in enumerate(expected):
        got = merged[i]
        assert got.meta["dataset_seed"] == want.meta["dataset_seed"]
        assert got.meta["index"] == want.meta["index"]
        assert (got.frames == want.frames).all()
    assert all(p.is_symlink() for p in out.glob("*.npz"))  # linked, not copied
    assert [m["sessions"] for m in merged.info["merged_from"]] == [3, 3]

    again = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), str(rgb), str(spectral)],
        capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "not empty" in again.stderr
    alone = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x"), str(rgb)],
                           capture_output=True, text=True, timeout=60)
    assert alone.returncode == 1 and "at least two" in alone.stderr


def test_splits_rendered_as_aligned_caches_merge_into_one_cache(tmp_path):
    rgb = _render(tmp_path / "rgb", 1, "--width", "320", "--height", "240", "--aligned-cache", "64")
    spectral = _render(tmp_path / "spec", 2, "--width", "320", "--height", "240",
                       "--physics", "spectral", "--aligned-cache", "64")
    assert not (rgb / "index.json").exists()  # no session files, only the cache
    out = tmp_path / "mixed" / "dev"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), str(rgb), str(spectral)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    model = ModelConfig(input_size=64)
    parts = [load_split_for(d, model, progress=False) for d in (rgb, spectral)]
    merged = load_split_for(out, model, progress=False)
    assert len(merged) == sum(len(p) for p in parts) > 2
    assert f"cache: {len(merged)} samples at 64²" in done.stdout
    np.testing.assert_array_equal(merged.x.numpy(), np.concatenate([p.x.numpy() for p in parts]))
    assert merged.labels == parts[0].labels + parts[1].labels
    assert [m["dataset_seed"] for m in merged.meta] == [m["dataset_seed"] for p in parts
                                                        for m in p.meta]


def test_one_split_without_a_class(tmp_path):
    rgb = _render(tmp_path / "rgb", 3, "--width", "320", "--height", "240", "--n", "8",
                  "--aligned-cache", "64")
    model = ModelConfig(input_size=64)
    whole = load_split_for(rgb, model, progress=False)
    gone = next(label for label in whole.labels if label != "live")  # an attack class there
    out = tmp_path / "without" / "train"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--drop", gone,
                           str(rgb)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    kept = load_split_for(out, model, progress=False)
    keep = [i for i, label in enumerate(whole.labels) if label != gone]
    assert kept.labels == [whole.labels[i] for i in keep] and 0 < len(keep) < len(whole)
    np.testing.assert_array_equal(kept.x.numpy(), whole.x.numpy()[keep])
    np.testing.assert_array_equal(kept.depth.numpy(), whole.depth.numpy()[keep])
    bad = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x"), "--drop",
                          "wood", str(rgb)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "wood" in bad.stderr

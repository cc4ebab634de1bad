"""The dataset format round-trips every field, keeps renderer-only fields optional, and refuses
what it cannot read with a typed error (docs/DATASET.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flashfas_edge.data import iter_sessions
from flashfas_edge.data.dataset_format import (
    DatasetFormatError,
    DatasetReader,
    read_session_file,
    read_shard,
    write_index,
    write_session_file,
    write_shard,
)
from flashfas_edge.data.session import Session


def _session(rng: np.random.Generator, labelled: bool = True, t: int = 5) -> Session:
    return Session(
        frames=rng.integers(0, 256, (t, 24, 32, 3), dtype=np.uint8),
        frame_times_us=np.arange(t, dtype=np.int64) * 33_333 + 10**9,
        exposure_us=8000,
        readout_us=16000,
        flash_rgb=rng.uniform(0, 1, (5, 3)).astype(np.float32),
        flash_intensity=np.array([0.5, 1.0, 0.0, 0.25, 0.75], np.float32),
        flash_onsets_us=np.arange(5, dtype=np.int64) * 100_000 + 10**9,
        state_duration_us=100_000,
        latency_us=40_000,
        order=np.array([1, 4, 0, 3, 2], np.int64),
        nonce="ab12" * 8,
        landmarks=rng.uniform(0, 30, (t, 5, 2)).astype(np.float32) if labelled else None,
        attack_type="print" if labelled else None,
        depth=np.full((64, 64), 0.5, np.float32) if labelled else None,
        meta={"scenario": "office", "distance_m": 0.4, "nested": {"k": [1, 2]}} if labelled
        else {},
    )


def _assert_same(a: Session, b: Session) -> None:
    for name in ("frames", "frame_times_us", "flash_rgb", "flash_intensity", "flash_onsets_us",
                 "order", "landmarks", "depth"):
        va, vb = getattr(a, name), getattr(b, name)
        if va is None:
            assert vb is None, name
        else:
            assert vb.dtype == np.asarray(va).dtype or name in ("order",)
            np.testing.assert_array_equal(va, vb, err_msg=name)
    for name in ("exposure_us", "readout_us", "state_duration_us", "latency_us", "nonce",
                 "attack_type", "meta"):
        assert getattr(a, name) == getattr(b, name), name


def test_a_shard_round_trips_labelled_and_unlabelled_sessions(tmp_path):
    rng = np.random.default_rng(0)
    sessions = [_session(rng), _session(rng, labelled=False, t=11), _session(rng)]
    write_shard(tmp_path / "s.npz", sessions)
    back = read_shard(tmp_path / "s.npz")
    assert len(back) == 3
    for a, b in zip(sessions, back, strict=False):
        _assert_same(a, b)
    assert back[1].attack_type is None and back[1].is_live is None


def test_a_compressed_shard_reads_the_same(tmp_path):
    rng = np.random.default_rng(1)
    s = _session(rng)
    write_shard(tmp_path / "c.npz", [s], compress=True)
    _assert_same(s, read_shard(tmp_path / "c.npz")[0])


def test_the_same_sessions_give_byte_identical_shards(tmp_path):
    s = _session(np.random.default_rng(2))
    write_shard(tmp_path / "a.npz", [s])
    write_shard(tmp_path / "b.npz", [s])
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_single_session_files_are_one_session_shards(tmp_path):
    s = _session(np.random.default_rng(3))
    write_session_file(tmp_path / "one.npz", s)
    _assert_same(s, read_session_file(tmp_path / "one.npz"))
    write_shard(tmp_path / "two.npz", [s, s])
    with pytest.raises(DatasetFormatError):
        read_session_file(tmp_path / "two.npz")


def test_the_reader_streams_a_folder_by_split(tmp_path):
    rng = np.random.default_rng(4)
    a, b, c = _session(rng), _session(rng), _session(rng)
    write_shard(tmp_path / "shard-00000.npz", [a, b])
    write_shard(tmp_path / "shard-00001.npz", [c])
    samples = [
        {"shard": "shard-00000.npz", "key": "s0000", "split": "train", "attack_type": "print"},
        {"shard": "shard-00000.npz", "key": "s0001", "split": "dev", "attack_type": "print"},
        {"shard": "shard-00001.npz", "key": "s0000", "split": "train", "attack_type": "print"},
    ]
    write_index(tmp_path, [], samples, {})
    reader = DatasetReader(tmp_path)
    assert len(reader) == 3
    _assert_same(reader[1], b)
    train = list(reader.iter_sessions(split="train"))
    assert len(train) == 2
    _assert_same(train[1], c)
    assert len(list(iter_sessions(tmp_path))) == 3


def test_a_wrong_version_or_missing_index_is_a_typed_error(tmp_path):
    with pytest.raises(DatasetFormatError):
        DatasetReader(tmp_path)
    write_index(tmp_path, [], [], {})
    idx = json.loads((tmp_path / "index.json").read_text())
    idx["version"] = 99
    (tmp_path / "index.json").write_text(json.dumps(idx))
    with pytest.raises(DatasetFormatError, match="version"):
        DatasetReader(tmp_path)


def test_bad_records_are_refused(tmp_path):
    rng = np.random.default_rng(5)
    s = _session(rng)
    s.order = np.array([0, 0, 1, 2, 3], np.int64)
    with pytest.raises(DatasetFormatError, match="permutation"):
        write_shard(tmp_path / "x.npz", [s])
    s = _session(rng)
    s.attack_type = "cartoon"
    with pytest.raises(DatasetFormatError):
        write_shard(tmp_path / "x.npz", [s])
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetFormatError):
        read_shard(tmp_path / "junk.npz")

"""The session dataset format (docs/DATASET.md), version 1: writer and streaming reader.

A dataset is a folder with ``index.json`` and shards ``shard-NNNNN.npz``. A shard is a plain zip
of ``.npy`` arrays (what ``numpy.load`` opens), one group of keys per session: ``s0003/frames``,
``s0003/frame_times_us``, ... Zip entries carry a fixed timestamp, so the same sessions give
byte-identical shards. Renderer-only fields (attack_type, depth, landmarks, meta) are optional: a
real kiosk (``flashfas-edge record``) writes the same files without them.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.data.session import LABELS, Session

FORMAT_NAME = "flashfas-sessions"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# (field, dtype, required)
_ARRAY_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("frames", "uint8", True),
    ("frame_times_us", "int64", True),
    ("flash_rgb", "float32", True),
    ("flash_intensity", "float32", True),
    ("flash_onsets_us", "int64", True),
    ("order", "int64", True),
    ("landmarks", "float32", False),
    ("depth", "float32", False),
)
_INT_FIELDS = ("exposure_us", "readout_us", "state_duration_us", "latency_us")


class DatasetFormatError(ValueError):
    """A dataset folder, shard or session record is missing, malformed or of another version."""


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # (np.ascontiguousarray would turn 0-d scalars into 1-d arrays)
    arr = arr if arr.flags.c_contiguous else arr.copy()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def session_arrays(session: Session) -> dict[str, np.ndarray]:
    """The arrays that represent one session (validated)."""
    validate_session(session)
    out: dict[str, np.ndarray] = {}
    for name, dtype, _required in _ARRAY_FIELDS:
        value = getattr(session, name)
        if value is None:
            continue
        out[name] = np.asarray(value, dtype=dtype)
    for name in _INT_FIELDS:
        out[name] = np.asarray(int(getattr(session, name)), np.int64)
    out["nonce"] = np.asarray(session.nonce, dtype=f"<U{max(len(session.nonce), 1)}")
    if session.attack_type is not None:
        out["attack_type"] = np.asarray(session.attack_type, dtype="<U8")
    meta = json.dumps(session.meta, sort_keys=True, default=_json_default)
    out["meta_json"] = np.asarray(meta, dtype=f"<U{max(len(meta), 1)}")
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON-serialisable")


def validate_session(s: Session) -> None:
    if s.frames.dtype != np.uint8 or s.frames.ndim != 4 or s.frames.shape[-1] != 3:
        raise DatasetFormatError(f"frames must be uint8 [T, H, W, 3], got {s.frames.dtype} "
                                 f"{s.frames.shape}")
    t = s.frames.shape[0]
    n0 = s.n0
    if np.shape(s.frame_times_us) != (t,):
        raise DatasetFormatError("frame_times_us must have one entry per frame")
    if np.shape(s.flash_rgb) != (n0, 3) or np.shape(s.flash_onsets_us) != (n0,):
        raise DatasetFormatError("flash_rgb [N0, 3] and flash_onsets_us [N0] must match N0")
    if sorted(np.asarray(s.order).tolist()) != list(range(n0)):
        raise DatasetFormatError("order must be a permutation of the N0 state indices")
    if s.landmarks is not None and np.shape(s.landmarks) != (t, 5, 2):
        raise DatasetFormatError("landmarks must be float32 [T, 5, 2]")
    if s.depth is not None and np.ndim(s.depth) != 2:
        raise DatasetFormatError("depth must be a 2-D map")
    if s.attack_type is not None and s.attack_type not in LABELS:
        raise DatasetFormatError(f"attack_type must be one of {LABELS}, got {s.attack_type!r}")


def session_from_arrays(arrays: dict[str, np.ndarray]) -> Session:
    try:
        kw: dict[str, Any] = {}
        for name, dtype, required in _ARRAY_FIELDS:
            if name in arrays:
                kw[name] = np.asarray(arrays[name], dtype=dtype)
            elif required:
                raise DatasetFormatError(f"session record lacks required array {name!r}")
            else:
                kw[name] = None
        for name in _INT_FIELDS:
            kw[name] = int(arrays[name])
        kw["nonce"] = str(arrays["nonce"]) if "nonce" in arrays else ""
        kw["attack_type"] = str(arrays["attack_type"]) if "attack_type" in arrays else None
        kw["meta"] = json.loads(str(arrays["meta_json"])) if "meta_json" in arrays else {}
    except KeyError as exc:
        raise DatasetFormatError(f"session record lacks field {exc.args[0]!r}") from exc
    session = Session(**kw)
    validate_session(session)
    return session


def write_shard(path: Path, sessions: Sequence[Session], compress: bool = False) -> int:
    """Write sessions to one shard file (atomically); returns the file size in bytes."""
    tmp = Path(str(path) + ".tmp")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as zf:
        for j, session in enumerate(sessions):
            for name, arr in session_arrays(session).items():
                info = zipfile.ZipInfo(f"s{j:04d}/{name}.npy", date_time=_ZIP_TIME)
                info.compress_type = method
                info.external_attr = 0o644 << 16
                zf.writestr(info, _npy_bytes(arr), compresslevel=1 if compress else None)
    os.replace(tmp, path)
    return path.stat().st_size


def read_shard(path: Path) -> list[Session]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            groups: dict[str, dict[str, np.ndarray]] = {}
            for key in npz.files:
                prefix, _, name = key.partition("/")
                groups.setdefault(prefix, {})[name] = npz[key]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetFormatError(f"cannot read shard {path}: {exc}") from exc
    return [session_from_arrays(groups[k]) for k in sorted(groups)]


def write_session_file(path: Path, session: Session) -> int:
    """One session as a single-shard file (what ``record`` and recorded uploads use)."""
    return write_shard(Path(path), [session])


def read_session_file(path: Path) -> Session:
    sessions = read_shard(Path(path))
    if len(sessions) != 1:
        raise DatasetFormatError(f"{path} holds {len(sessions)} sessions, expected 1")
    return sessions[0]


@dataclass(frozen=True)
class SampleEntry:
    """One row of index.json: where a session lives and what it is, without opening the shard."""

    shard: str
    key: str
    fields: dict[str, Any]

    @property
    def attack_type(self) -> str | None:
        return self.fields.get("attack_type")

    @property
    def split(self) -> str | None:
        return self.fields.get("split")


def write_index(folder: Path, shards: list[dict[str, Any]], samples: list[dict[str, Any]],
                info: dict[str, Any]) -> None:
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "info": info,
             "shards": shards, "samples": samples}
    tmp = folder / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    os.replace(tmp, folder / INDEX_FILE)


class DatasetReader:
    """Streams Session objects from a dataset folder (training, evaluation, replay of cases)."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        index_path = self.folder / INDEX_FILE
        if not index_path.is_file():
            raise DatasetFormatError(f"{self.folder} has no {INDEX_FILE}")
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{index_path} is not valid JSON: {exc}") from exc
        if index.get("format") != FORMAT_NAME:
            raise DatasetFormatError(f"{index_path}: not a {FORMAT_NAME} dataset")
        if index.get("version") != FORMAT_VERSION:
            raise DatasetFormatError(
                f"{index_path}: format version {index.get('version')}, this reader reads "
                f"{FORMAT_VERSION}")
        self.info: dict[str, Any] = index.get("info", {})
        self.entries = [SampleEntry(s["shard"], s["key"], s) for s in index["samples"]]
        self._cache: tuple[str, list[Session]] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def _shard(self, name: str) -> list[Session]:
        if self._cache is None or self._cache[0] != name:
            self._cache = (name, read_shard(self.folder / name))
        return self._cache[1]

    def __getitem__(self, i: int) -> Session:
        e = self.entries[i]
        return self._shard(e.shard)[int(e.key[1:])]

    def select(self, split: str | None = None, attack_type: str | None = None) -> list[int]:
        return [i for i, e in enumerate(self.entries)
                if (split is None or e.split == split)
                and (attack_type is None or e.attack_type == attack_type)]

    def iter_sessions(self, split: str | None = None, shuffle_shards: bool = False,
                      seed: int = 0) -> Iterator[Session]:
        """Sessions shard by shard (one shard in memory at a time), optionally one split only."""
        by_shard: dict[str, list[int]] = {}
        for i in self.select(split):
            by_shard.setdefault(self.entries[i].shard, []).append(i)
        names = sorted(by_shard)
        if shuffle_shards:
            np.random.default_rng(seed).shuffle(names)
        for name in names:
            sessions = self._shard(name)
            for i in by_shard[name]:
                yield sessions[int(self.entries[i].key[1:])]

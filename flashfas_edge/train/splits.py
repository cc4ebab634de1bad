"""Dataset folders → cached split tensors.

``--data DIR`` is a dataset written by ``flashfas-edge synth`` (or ``record``): either a folder with
``train/``, ``dev/``, ``test/`` split sub-folders (the renderer's protocol: splits differ in
ambient scenario, identity and device profile), or a single split folder. Each split is aligned
once into a cache (default ``DIR/.flashfas-cache/``) and loaded into memory per run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from flashfas_edge.data.dataset_format import DatasetFormatError
from flashfas_edge.inference.bundle import Bundle
from flashfas_edge.train.cache import (
    CacheError,
    SplitTensors,
    build_cache,
    concat_splits,
    load_split,
)
from flashfas_edge.train.config import ModelConfig

SPLITS = ("train", "dev", "test")


class DataError(RuntimeError):
    """A dataset folder or split is missing or unreadable."""


def find_split(data_dir: Path, name: str) -> Path | None:
    """``DIR/name`` if it exists; a folder without split sub-folders counts as its own ``test``."""
    candidate = data_dir / name
    if candidate.is_dir():
        return candidate
    if name == "test" and data_dir.is_dir() and not any((data_dir / s).is_dir() for s in SPLITS):
        return data_dir
    return None


def _iter_sessions(split_dir: Path):
    from flashfas_edge.data import iter_sessions  # the dataset-format reader

    return iter_sessions(split_dir)


def dataset_info(data_dir: Path) -> dict:
    """Provenance of a dataset (seed, protocol …) as its writer recorded it, if it did."""
    for candidate in (data_dir / "dataset.json", data_dir.parent / "dataset.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except json.JSONDecodeError:
                break
    return {}


def cache_dir_for(split_dir: Path, size: int, cache_root: Path | None) -> Path:
    root = cache_root or split_dir.parent / ".flashfas-cache"
    tag = hashlib.sha256(str(split_dir.resolve()).encode()).hexdigest()[:8]
    return root / f"{split_dir.name}-{tag}-s{size}"


def load_split_for(
    split_dir: Path,
    model: ModelConfig,
    cache_root: Path | None = None,
    progress: bool = True,
    keep_aligned: bool = False,
) -> SplitTensors:
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: split folder does not exist")
    cache_dir = cache_dir_for(split_dir, model.input_size, cache_root)
    if not (cache_dir / "info.json").is_file():
        try:  # not a dataset folder: a clear message, no traceback
            sessions = _iter_sessions(split_dir)
            if progress:
                from tqdm import tqdm

                sessions = tqdm(sessions, desc=f"aligning {split_dir.name}", leave=False)
            source = str(split_dir.resolve())
            info = build_cache(sessions, cache_dir, model.input_size, source=source)
        except DatasetFormatError as exc:
            raise DataError(str(exc)) from exc
        if progress and info["skipped"]:
            print(f"{split_dir.name}: {info['count']} samples, skipped {info['skipped']}")
    try:
        return load_split(cache_dir, model.input_mode, model.depth_size, keep_aligned)
    except CacheError as exc:
        raise DataError(str(exc)) from exc


def dataset_inputs(bundle: Bundle, data_dir: Path, split: str = "dev") -> np.ndarray:
    """A dataset split's checks as the bundle's networks see them (through the training cache):
    float32 [B, N, 3, S, S], for ``engines verify --data``."""
    split_dir = find_split(Path(data_dir), split)
    if split_dir is None:
        raise DataError(f"{data_dir}: no {split} split")
    tensors = load_split_for(split_dir, ModelConfig(n0=bundle.n0, input_size=bundle.input_size))
    return np.ascontiguousarray(tensors.x.float().numpy())


def extra_train_dirs(extra: list[Path]) -> list[Path]:
    """``--extra-train`` arguments → split folders: a dataset's ``train/`` or the folder itself."""
    dirs = []
    for folder in extra:
        found = find_split(folder, "train") or (folder if folder.is_dir() else None)
        if found is None:
            raise DataError(f"{folder}: no such training split folder")
        dirs.append(found)
    return dirs


def load_training_split(
    train_dirs: list[Path],
    model: ModelConfig,
    cache_root: Path | None = None,
    progress: bool = True,
    keep_aligned: bool = False,
) -> SplitTensors:
    """The training split and every ``--extra-train`` split, concatenated in that order."""
    return concat_splits(
        [load_split_for(d, model, cache_root, progress, keep_aligned) for d in train_dirs]
    )


def training_provenance(data_dir: Path, extra_dirs: list[Path]) -> dict:
    """Where a run's data came from, as its checkpoints record it (``provenance.data``)."""
    return {
        "path": str(data_dir.resolve()),
        "dataset": dataset_info(data_dir),
        "extra_train": [{"path": str(d.resolve()), "dataset": dataset_info(d)} for d in extra_dirs],
    }

"""Recorded and synthetic flash sessions: the Session record and the dataset format."""

from __future__ import annotations

import os
from collections.abc import Iterator

from flashfas_edge.data.session import LABELS, Session

__all__ = ["LABELS", "Session", "iter_sessions"]


def iter_sessions(folder: str | os.PathLike[str], split: str | None = None) -> Iterator[Session]:
    """Stream the sessions of a dataset folder (one with ``index.json``), shard by shard."""
    from flashfas_edge.data.dataset_format import DatasetReader

    return DatasetReader(folder).iter_sessions(split=split)

"""One Session → the network input the daemon would compute (docs/ARCHITECTURE.md §1 steps 4, 7, 8).

Frames are chosen exactly as the daemon chooses them (``_core.assign_frames``: one clean frame per
flash state), aligned with the session's landmarks onto ``canonical_template(size)`` and turned into
differential frames by ``_core`` — the same code path as ``_core.preprocess``. The Table 4 input
ablations (raw frames, consecutive differences) are built from the same aligned frames with the
same global-RMS normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge import _core
from flashfas_edge.data.session import LABELS, Session
from flashfas_edge.face.template import canonical_template
from flashfas_edge.inference.backend import ATTACK_TYPES


class SampleError(ValueError):
    """A session cannot become a training sample (no clean frame for a state, no labels …)."""


@dataclass
class AlignedSample:
    aligned: np.ndarray  # uint8 [N0, S, S, 3], brightest flash first (sorted by ``order``)
    attack_index: int  # −1 live, else index into ATTACK_TYPES
    depth: np.ndarray  # float32 [64, 64] ground-truth depth (spoof = 0.5)
    meta: dict


def attack_index(label: str | None) -> int:
    if label not in LABELS:
        raise SampleError(f"session has no usable attack_type label ({label!r})")
    return -1 if label == "live" else ATTACK_TYPES.index(label)


def select_frames(session: Session) -> np.ndarray:
    """int64 [N0]: the clean frame of every flash state, as the daemon picks it (step 4)."""
    chosen = _core.assign_frames(
        np.ascontiguousarray(session.frame_times_us, dtype=np.int64),
        int(session.exposure_us),
        int(session.readout_us),
        np.ascontiguousarray(session.flash_onsets_us, dtype=np.int64),
        int(session.latency_us),
        int(session.state_duration_us),
    )
    chosen = np.asarray(chosen, dtype=np.int64)
    if (chosen < 0).any():
        raise SampleError(
            f"no clean frame for flash state(s) {np.flatnonzero(chosen < 0).tolist()}"
        )
    return chosen


def align_session(session: Session, size: int) -> AlignedSample:
    if session.landmarks is None:
        raise SampleError("session has no landmarks")
    index = attack_index(session.attack_type)
    chosen = select_frames(session)
    if session.frames.dtype != np.uint8:
        raise SampleError(f"frames must be uint8, got {session.frames.dtype}")
    # .view(np.uint8): an unpickled array (multiprocessing) carries an equal but distinct dtype
    # object that _core's identity check rejects.
    frames = np.ascontiguousarray(session.frames[chosen]).view(np.uint8)
    landmarks = np.ascontiguousarray(session.landmarks[chosen], dtype=np.float32)
    aligned, _outside = _core.align_faces(frames, landmarks, canonical_template(size), size)
    order = np.asarray(session.order, dtype=np.int64)
    depth = session.depth if session.depth is not None else np.full((64, 64), 0.5, np.float32)
    return AlignedSample(
        aligned=np.ascontiguousarray(aligned[order]),
        attack_index=index,
        depth=np.asarray(depth, dtype=np.float32),
        meta=dict(session.meta),
    )


def _global_rms(x: np.ndarray) -> np.ndarray:
    """The normalisation ``_core.diffnorm`` applies, for the Table 4 ablation inputs."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return (x / max(rms, float(_core.GLOBAL_RMS_EPS))).astype(np.float32)


def network_input(aligned_sorted: np.ndarray, input_mode: str) -> np.ndarray:
    """float32 [N, 3, S, S] from brightest-first aligned uint8 [N0, S, S, 3]."""
    n0 = aligned_sorted.shape[0]
    if input_mode == "diffnorm":  # bit-identical to _core.preprocess (its documented contract)
        identity = np.arange(n0, dtype=np.int64)
        return _core.diffnorm(np.ascontiguousarray(aligned_sorted).view(np.uint8), identity, n0)
    frames = aligned_sorted.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    if input_mode == "raw":  # ATR-FAS Table 4 "w/o DN"
        return _global_rms(frames)
    if input_mode == "consecutive":  # Aurora Guard [15]: neighbouring-intensity differences
        return _global_rms(frames[:-1] - frames[1:])
    raise SampleError(f"unknown input mode {input_mode!r}")

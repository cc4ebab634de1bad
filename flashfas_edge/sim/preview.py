"""``synth --preview``: a PNG montage for a person to look at — per row one session (live and each
attack under several ambient scenarios): the brightest and darkest raw frames, then differential
frames against the darkest one (ATR-FAS §3.2), all cropped around the face.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from flashfas_edge.data.dataset_format import DatasetReader
from flashfas_edge.data.session import LABELS, Session

_TILE = 160


def _crop_box(s: Session, frame: int) -> tuple[float, float, float]:
    if s.landmarks is None or not np.all(np.isfinite(s.landmarks[frame])):
        h, w = s.frames.shape[1:3]
        return w / 2, h / 2, min(h, w) / 2
    lm = s.landmarks[frame]
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    c = lm.mean(axis=0)
    return float(c[0]), float(c[1] - 0.2 * iod), 1.8 * iod


def _crop(img: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    cx, cy, half = box
    m = np.array([[_TILE / (2 * half), 0, _TILE / 2 - cx * _TILE / (2 * half)],
                  [0, _TILE / (2 * half), _TILE / 2 - cy * _TILE / (2 * half)]], np.float32)
    return cv2.warpAffine(img, m, (_TILE, _TILE), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT)


def session_row(s: Session) -> np.ndarray:
    order = np.asarray(s.order)
    # frames by state: the frame whose start is inside each state's light interval
    starts = s.frame_times_us
    state_frame = []
    for i in range(s.n0):
        on = s.flash_onsets_us[i] + s.latency_us
        inside = np.nonzero((starts >= on) & (starts < on + s.state_duration_us))[0]
        state_frame.append(int(inside[len(inside) // 2]) if len(inside) else 0)
    sorted_frames = [state_frame[int(k)] for k in order]  # brightest … darkest
    box = _crop_box(s, sorted_frames[-1])
    lin = [(_crop(s.frames[f], box).astype(np.float32) / 255.0) ** 2.2 for f in sorted_frames]
    dark = lin[-1]
    diffs = [np.clip(x - dark, 0, None) for x in lin[:-1]]
    # one gain per row from the raw brightest frame: a weak flash response stays dark
    gain = 2.5 / max(float(np.percentile(lin[0], 99)), 1e-3)
    tiles = [_crop(s.frames[sorted_frames[0]], box), _crop(s.frames[sorted_frames[-1]], box)]
    tiles += [(np.clip(d * gain, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8) for d in diffs]
    row = np.concatenate(tiles, axis=1)
    label = f"{s.attack_type}  {s.meta.get('scenario', '')}  {s.meta.get('device', '')}"
    cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 0), 1,
                cv2.LINE_AA)
    return row


def header(n0: int) -> np.ndarray:
    names = ["raw brightest", "raw darkest"] + [f"F{k + 1} - F{n0}" for k in range(n0 - 1)]
    bar = np.zeros((22, _TILE * len(names), 3), np.uint8)
    for k, name in enumerate(names):
        cv2.putText(bar, name, (k * _TILE + 6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return bar


def write_preview(datasets: list[Path], png: Path, per_class: int = 3) -> int:
    """Montage of up to ``per_class`` sessions per label (distinct scenarios) from the folders."""
    readers = [DatasetReader(d) for d in datasets]
    picked: list[tuple[DatasetReader, int]] = []
    for label in LABELS:
        seen: set[str] = set()
        for reader in readers:
            for i in reader.select(attack_type=label):
                scen = reader.entries[i].fields.get("scenario", "")
                if scen in seen or len(seen) == per_class:
                    continue
                seen.add(scen)
                picked.append((reader, i))
    if not picked:
        raise ValueError("the dataset holds no sessions to preview")
    sessions = [r[i] for r, i in picked]
    rows = [session_row(s) for s in sessions]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    montage = np.concatenate([header(sessions[0].n0)[:, :width]] + rows, axis=0)
    png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(png), montage[..., ::-1])
    return len(rows)

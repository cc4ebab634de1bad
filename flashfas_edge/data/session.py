"""One recorded flash session: what the dataset format stores and what the pipeline consumes.

The same structure comes from the renderer (``flashfas-edge synth``), from a real kiosk
(``flashfas-edge record``) and from an upload to ``POST /v1/evaluate/recorded``. Fields that only a
renderer can know (labels, depth, scene parameters) are optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LABELS = ("live", "print", "replay", "mask")  # attack_type values; "live" means bona fide


@dataclass
class Session:
    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    frame_times_us: np.ndarray  # int64 [T], host-monotonic start of the first row's exposure
    exposure_us: int
    readout_us: int  # rolling shutter: last row starts this long after the first
    flash_rgb: np.ndarray  # float32 [N0, 3], colour of each flash state in [0, 1], in play order
    flash_intensity: np.ndarray  # float32 [N0], intensity of each state in [0, 1], in play order
    flash_onsets_us: np.ndarray  # int64 [N0], host-monotonic onset of each state as reported
    state_duration_us: int
    latency_us: int  # display/LED-to-camera latency of the device (calibrated)
    order: np.ndarray  # int64 [N0], state indices from brightest to darkest
    nonce: str = ""
    landmarks: np.ndarray | None = None  # float32 [T, 5, 2] (ground truth or detector output)
    attack_type: str | None = None  # one of LABELS, None when unlabelled
    depth: np.ndarray | None = None  # float32 [64, 64] in [0, 1]; spoof = 0.5
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable conditions

    @property
    def n0(self) -> int:
        return int(self.flash_intensity.shape[0])

    @property
    def is_live(self) -> bool | None:
        return None if self.attack_type is None else self.attack_type == "live"

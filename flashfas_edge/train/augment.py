"""Flash-SNR augmentation: make a check look as if the ambient light were stronger.

Under strong ambient light (sunlight) the camera shortens its exposure, so the flash adds fewer
grey levels on top of the ambient image while sensor noise and quantisation stay; differential
frames (ATR-FAS §3.2) cancel the ambient term but not that noise. On aligned uint8 frames
(brightest first, the last one lit by ambient only) we shrink the flash part and add fresh
per-frame noise, then re-quantise:  F'_j = round(F_dark + s·(F_j − F_dark) + σ·n_j).
"""

from __future__ import annotations

import numpy as np

from flashfas_edge.train.sample import network_input

FLASH_SCALE_RANGE = (0.2, 1.0)  # s: remaining share of the flash signal
NOISE_SIGMA_RANGE = (0.0, 2.5)  # σ in grey levels, per pixel and frame


def weaken_flash(aligned: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N0, S, S, 3], brightest first → the same check under a weaker flash-to-ambient SNR."""
    frames = aligned.astype(np.float32)
    dark = frames[-1:]
    scale = rng.uniform(*FLASH_SCALE_RANGE)
    sigma = rng.uniform(*NOISE_SIGMA_RANGE)
    out = dark + scale * (frames - dark) + rng.normal(0.0, sigma, frames.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def augmented_inputs(
    aligned: np.ndarray, input_mode: str, probability: float, rng: np.random.Generator
) -> np.ndarray:
    """float32 [B, N, 3, S, S] network inputs; each check weakened with ``probability``."""
    out = []
    for check in aligned:
        if rng.random() < probability:
            check = weaken_flash(np.asarray(check), rng)
        out.append(network_input(np.asarray(check), input_mode))
    return np.stack(out)

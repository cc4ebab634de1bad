"""Training-time augmentations on aligned uint8 checks (brightest flash first, the last frame lit
by ambient light only).

- **Flash-SNR** (``weaken_flash``): make a check look as if the ambient light were stronger. Under
  strong ambient light the camera shortens its exposure, so the flash adds fewer grey levels on top
  of the ambient image while sensor noise and quantisation stay; differential frames (ATR-FAS
  §3.2) cancel the ambient term but not that noise. We shrink the flash part and add fresh
  per-frame noise, then re-quantise:  F'_j = round(F_dark + s·(F_j − F_dark) + σ·n_j).
- **Ambient relighting** (``relight_ambient``): put the face under a brighter, *directional*
  ambient light (one lit side, one shadow side, a soft or hard terminator) and let the camera's
  auto-exposure bring the mean level back. Done in linear light, as the camera sees it: the flash
  part shrinks with the exposure, and after the camera's gamma the flash response is compressed on
  the lit side and stretched on the shadow side. Training scenes are lit from the front, diffusely
  or from behind; this shows the networks the side-lit look of strong sun without rendering any
  scene of the held-out test scenarios.
- **Alignment jitter** (``jitter_alignment``): the kiosk aligns each check on a landmark
  detector's points, not on the renderer's. The detector's error moves the whole crop by a small
  similarity (registration keeps the frames of a check together), so one random similarity about
  the template's centre re-aligns every frame of the check, and the depth label with it. Its
  spread is twice what MTCNN shows on the simulated kiosk's scanned faces
  (``scripts/measure_face_shapes.py``: shift sd 0.014 / 0.020 template interocular distances in
  x / y, scale 3.5 %, rotation 1.4°), for real faces under a real camera.
"""

from __future__ import annotations

import cv2
import numpy as np

from flashfas_edge.face.template import canonical_template
from flashfas_edge.train.config import RELIGHT_BOOST_DEFAULT
from flashfas_edge.train.sample import network_input

FLASH_SCALE_RANGE = (0.2, 1.0)  # s: remaining share of the flash signal
NOISE_SIGMA_RANGE = (0.0, 2.5)  # σ in grey levels, per pixel and frame

CAMERA_GAMMA = 2.2  # the device profiles span 2.0–2.4
SHADOW_LEVEL_RANGE = (0.15, 0.7)  # the shadow side's share of the lit side's ambient light
TERMINATOR_WIDTH_RANGE = (0.05, 0.5)  # in face half-widths: hard sun edge … soft wrap
RELIGHT_NOISE_RANGE = (0.3, 1.5)  # fresh sensor noise in grey levels after re-quantisation
ALIGN_SHIFT_SD = 0.04  # template interocular distances, per axis
ALIGN_LOG_SCALE_SD = 0.05
ALIGN_ROTATION_SD_DEG = 2.5
# uint8 → linear light, by table: the same float32 values as the power law, ~6× faster
_LINEAR = (np.arange(256, dtype=np.float32) / 255.0) ** CAMERA_GAMMA


def weaken_flash(aligned: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N0, S, S, 3], brightest first → the same check under a weaker flash-to-ambient SNR."""
    frames = aligned.astype(np.float32)
    dark = frames[-1:]
    scale = rng.uniform(*FLASH_SCALE_RANGE)
    sigma = rng.uniform(*NOISE_SIGMA_RANGE)
    out = dark + scale * (frames - dark) + rng.normal(0.0, sigma, frames.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def side_light(size: int, rng: np.random.Generator) -> np.ndarray:
    """float32 [S, S]: relative ambient irradiance of a random directional light, max 1."""
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle) - rng.uniform(-0.4, 0.4)
    width = rng.uniform(*TERMINATOR_WIDTH_RANGE)
    lit = 1.0 / (1.0 + np.exp(-along / width))
    shadow = rng.uniform(*SHADOW_LEVEL_RANGE)
    return (shadow + (1 - shadow) * lit).astype(np.float32)


def relight_ambient(
    aligned: np.ndarray,
    rng: np.random.Generator,
    boost: tuple[float, float] = RELIGHT_BOOST_DEFAULT,
) -> np.ndarray:
    """uint8 [N0, S, S, 3], brightest first → the same check under a side light ``boost`` (a
    uniform range) times brighter than the old ambient light."""
    linear = _LINEAR[aligned]
    ambient = linear[-1:]
    flash = linear - ambient
    field = side_light(aligned.shape[1], rng)[None, :, :, None]
    # the new light is brighter on average (boost ≥ 1), however its shadow falls
    new_ambient = ambient * (field / field.mean()) * rng.uniform(*boost)
    # auto-exposure: the new ambient image keeps the old mean level
    exposure = min(1.0, float(ambient.mean()) / max(float(new_ambient.mean()), 1e-6))
    relit = np.clip((new_ambient + flash) * exposure, 0.0, 1.0)
    out = 255.0 * relit ** (1.0 / CAMERA_GAMMA)
    sigma = rng.uniform(*RELIGHT_NOISE_RANGE)
    out += sigma * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def alignment_jitter(size: int, rng: np.random.Generator) -> np.ndarray:
    """float64 [2, 3]: a random similarity about the template's centre, in ``size`` pixels."""
    template = canonical_template(size).astype(np.float64)
    centre = template.mean(axis=0)
    iod = template[1, 0] - template[0, 0]
    scale = np.exp(rng.normal(0.0, ALIGN_LOG_SCALE_SD))
    angle = np.radians(rng.normal(0.0, ALIGN_ROTATION_SD_DEG))
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.normal(0.0, ALIGN_SHIFT_SD, 2) * iod
    return np.hstack([linear, (centre + shift - linear @ centre)[:, None]])


def jitter_alignment(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[..., S, S, C] or [S, S] image(s) warped by ``matrix`` (given for a crop of the same size;
    a smaller map, e.g. the depth label, takes the shift in proportion). Edges are repeated."""
    if image.ndim == 4:
        return np.stack([jitter_alignment(frame, matrix) for frame in image])
    size = image.shape[0]
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def scaled_jitter(matrix: np.ndarray, factor: float) -> np.ndarray:
    """The same similarity on an image ``factor`` times the size. ``matrix`` is in OpenCV pixel
    coordinates (pixel centres at integers), the crop scaled in continuous ones (pixel i covers
    [i, i + 1)): the shift converts out, scales, and converts back."""
    linear, half = matrix[:, :2], np.array([0.5, 0.5])
    shift = (matrix[:, 2] - linear @ half + half) * factor + linear @ half - half
    return np.hstack([linear, shift[:, None]])


def augmented_inputs(
    aligned: np.ndarray,
    input_mode: str,
    rng: np.random.Generator,
    weaken: float = 0.0,
    relight: float = 0.0,
    boost: tuple[float, float] = RELIGHT_BOOST_DEFAULT,
    jitter: float = 0.0,
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """float32 [B, N, 3, S, S] network inputs, and per check the alignment jitter it got (None:
    none; the depth label must follow it). Each check is re-aligned with probability ``jitter``,
    relit with probability ``relight``, then weakened with probability ``weaken``."""
    out, moves = [], []
    for check in aligned:
        check = np.asarray(check)
        move = alignment_jitter(check.shape[1], rng) if rng.random() < jitter else None
        if move is not None:
            check = jitter_alignment(check, move)
        if rng.random() < relight:
            check = relight_ambient(check, rng, boost)
        if rng.random() < weaken:
            check = weaken_flash(check, rng)
        out.append(network_input(check, input_mode))
        moves.append(move)
    return np.stack(out), moves

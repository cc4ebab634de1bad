"""The face's response to each flash primary, with the room light's change taken out.

Under a coloured challenge (``hue_levels``) the face is lit by each display primary in a known
proportion, so the lit frames give a 3 × 3 response per face: what each camera channel sees of
the face under each primary. Divided by its sum, shading, distance and flash brightness drop out
and the surface's spectrum, as this kiosk sees it, is left: skin and a paint mixed to look like it
answer narrow primaries differently (docs/RESULTS.md, "The colour cue").

The difficulty is the room light. The flash adds a few tens of per cent to a face the room already
lights, and the room light does not hold still over the sequence: it drifts, and lamps on the
mains ripple at 100 or 120 Hz. Subtracting the ambient-only frame then leaves a part of the
ambient image in every lit frame, in the ambient's colour; a change of 1 % of the room light moves
the estimated response by several times the spread of skin among people. So the room light is
modelled, not ignored: it scales the ambient-only frame by ``1 + drift·t + a·sin ωt + b·cos ωt``,
each camera row at its own exposure time (rolling shutter), and the three terms are fitted
jointly with the response. Four lit states against three primaries leave one redundant state per
row band of the face, and the rows of a rolling-shutter frame see the ripple at different phases:
that is what pins the terms down.

Everything is measured in linear light at the camera's native resolution, summed over the face
region (the same ellipse the exposure and timing checks use, less the eyes and the mouth), with
clipped pixels left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from flashfas_edge import _core
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_region import face_crop, interocular_px
from flashfas_edge.pipeline.timing_check import RIPPLE_HZ

ROW_BANDS = 8  # the face's rows in this many bands, each a separate set of equations
_FEATURE_RADIUS_IOD = 0.3  # eyes and mouth are left out: a mask's eye openings show real eyes
# a pixel at or above the gates' saturation level in any frame is not linear
_CLIP_LEVEL = GateThresholds().saturation_level
_MIN_PIXELS = 400
# Prior spread of each room-light term (drift per second, ripple amplitudes): a term the frames
# barely constrain (e.g. states a whole number of ripple periods apart see the ripple at one
# phase) stays near zero instead of fitting what the head's motion left.
_TERM_SCALE = np.array([0.05, 0.05, 0.05])
_MAP_ROUNDS = 3


class ColourResponseError(ValueError):
    """The frames cannot give a per-primary response (no ambient-only state, too few lit states,
    the lit states do not span the three primaries, or too little unclipped face)."""


@dataclass(frozen=True)
class ColourResponse:
    """The face's linear response, ``response[p, c]``: camera channel c under primary p at full
    drive, summed over ``pixels`` face pixels (in linear camera units, [0, 1] per pixel)."""

    response: np.ndarray  # float64 [3 primaries, 3 channels]
    ambient_terms: np.ndarray  # float64 [3]: drift per second, ripple sin and cos (relative)
    ripple_hz: float  # the ripple frequency whose fit was kept (nan: not fitted)
    pixels: int
    flash_to_ambient: float  # the full-white response over the ambient-only frame, face summed

    def normalised(self) -> np.ndarray:
        """float64 [9], primary-major: the response divided by its sum (shading, distance and
        flash brightness drop out)."""
        total = float(self.response.sum())
        if not np.isfinite(total) or total <= 0:
            return np.full(9, np.nan)
        return (self.response / total).reshape(9)


def linear_lut(gamma: float) -> np.ndarray:
    """float64 [256]: 8-bit camera level → linear light under a power-law transfer function."""
    return np.power(np.arange(256, dtype=np.float64) / 255.0, gamma)


def face_region_mask(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """bool [H, W]: the face ellipse of ``landmarks`` (float [5, 2]) without the eyes and the
    mouth."""
    h, w = shape
    crop = face_crop(np.zeros((h, w, 3), np.uint8), landmarks)
    mask = np.zeros((h, w), np.uint8)
    if crop.mask.size:
        mask[crop.top:crop.top + crop.mask.shape[0],
             crop.left:crop.left + crop.mask.shape[1]] = crop.mask
    radius = max(1, int(round(_FEATURE_RADIUS_IOD * interocular_px(landmarks))))
    mouth = (landmarks[3] + landmarks[4]) / 2
    for point in (landmarks[0], landmarks[1], mouth):
        cv2.circle(mask, (int(round(point[0])), int(round(point[1]))), radius, 0, -1)
    return mask > 0


def _exposure_means(start_us: float, rows: np.ndarray, height: int, exposure_us: float,
                    readout_us: float, t_mid_us: float, omega: float) -> np.ndarray:
    """float64 [R, 3]: per row, the mean over its exposure window of t (s, from ``t_mid_us``),
    sin ωt and cos ωt (in closed form)."""
    t0 = (start_us + readout_us * rows / max(height - 1, 1) - t_mid_us) * 1e-6
    e = max(exposure_us, 1.0) * 1e-6
    if omega * e < 1e-9:
        s, c = np.sin(omega * t0), np.cos(omega * t0)
    else:
        s = (np.cos(omega * t0) - np.cos(omega * (t0 + e))) / (omega * e)
        c = (np.sin(omega * (t0 + e)) - np.sin(omega * t0)) / (omega * e)
    return np.stack([t0 + e / 2, s, c], axis=1)


def estimate_colour_response(images: Sequence[np.ndarray], drives: np.ndarray,
                             starts_us: Sequence[float], exposure_us: float, readout_us: float,
                             landmarks: np.ndarray, gamma: float,
                             ripple_hz: Sequence[float] = RIPPLE_HZ) -> ColourResponse:
    """The per-primary response of the face in ``images`` (uint8 [H, W, 3], one clean frame per
    state), lit by ``drives`` (float [K, 3]: each frame's state's drive of the R, G, B primaries,
    intensity included; one all-zero state: the ambient-only frame), exposed from ``starts_us``
    (first row) for ``exposure_us``, rows read out over ``readout_us``. ``landmarks``: float
    [K, 5, 2], each frame's (registered) landmarks: every frame is warped onto the ambient-only
    frame's face first, so that the head's small motion does not move the ambient image under
    the region (one set [5, 2] for a head that did not move). ``gamma``: the camera's transfer
    function. The room light's change is fitted for each of ``ripple_hz`` (and none) and the
    best fit kept."""
    drives = np.asarray(drives, np.float64)
    k_frames = len(images)
    shape = images[0].shape if k_frames else ()
    if len(shape) != 3 or shape[2] != 3 or any(
            img.dtype != np.uint8 or img.shape != shape for img in images):
        raise ColourResponseError("the frames must be uint8 [H, W, 3], all of one size")
    if drives.shape != (k_frames, 3) or len(starts_us) != k_frames:
        raise ColourResponseError("one drive [3] and one start time per frame are needed")
    marks = np.asarray(landmarks, np.float64)
    if marks.shape == (5, 2):
        marks = np.repeat(marks[None], k_frames, axis=0)
    if marks.shape != (k_frames, 5, 2) or not np.all(np.isfinite(marks)):
        raise ColourResponseError("landmarks must be [5, 2] or one finite [5, 2] per frame")
    totals = drives.sum(axis=1)
    dark = int(np.argmin(totals))
    if totals[dark] > 1e-9:
        raise ColourResponseError("no ambient-only state (all-zero drive) among the frames")
    lit = [k for k in range(k_frames) if k != dark]
    d_lit = drives[lit]
    if np.linalg.matrix_rank(d_lit, tol=1e-6) < 3:
        raise ColourResponseError("the lit states do not span the three primaries")
    h, w = images[0].shape[:2]
    region = face_region_mask((h, w), marks[dark])
    if not region.any():
        raise ColourResponseError("the face region lies outside the frame")
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    region = region[y0:y1, x0:x1]
    lut = linear_lut(gamma).astype(np.float32)
    linear = np.empty((k_frames, y1 - y0, x1 - x0, 3), np.float32)
    for k, img in enumerate(images):
        # frame k's face onto the ambient-only frame's, in the box around the region
        to_dark = (np.eye(2, 3) if k == dark
                   else _core.estimate_similarity(marks[k], marks[dark])).copy()
        to_dark[:, 2] -= (x0, y0)
        size = (x1 - x0, y1 - y0)
        linear[k] = cv2.warpAffine(lut[img], to_dark, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
        clipped = cv2.warpAffine(np.any(img >= _CLIP_LEVEL, axis=2).astype(np.float32),
                                 to_dark, size, flags=cv2.INTER_LINEAR)
        region &= clipped <= 0
    pixels = int(region.sum())
    if pixels < _MIN_PIXELS:
        raise ColourResponseError(f"only {pixels} unclipped face pixels (need {_MIN_PIXELS})")
    rows_local = np.flatnonzero(region.any(axis=1))
    rows = rows_local + y0
    # per row of the face: the sum of each frame's linear light over the region's pixels
    weight = region.astype(np.float32)
    row_sums = np.einsum("kyxc,yx->kyc", linear, weight)[:, rows_local].astype(np.float64)
    band_starts = _band_starts(np.minimum((np.arange(len(rows)) * ROW_BANDS) // len(rows),
                                          ROW_BANDS - 1))
    diff = row_sums[lit] - row_sums[dark][None]  # [L, R, 3]
    r_band = np.add.reduceat(diff, band_starts, axis=1)  # [L, B, 3]
    pinv = np.linalg.pinv(d_lit)  # [3, L]
    null = np.eye(len(lit)) - d_lit @ pinv  # projects out what the primaries can explain
    t_mid = float(np.mean(starts_us)) + exposure_us / 2 + readout_us / 2
    kept = _RoomLightFit(_residual(null, r_band), np.zeros(3), float("nan"), np.zeros_like(diff))
    for hz in ripple_hz:
        basis = np.stack([_exposure_means(float(s), rows.astype(np.float64), h, exposure_us,
                                          readout_us, t_mid, 2 * np.pi * float(hz))
                          for s in starts_us])  # [K, R, 3 terms]
        fit = _fit_room_light(basis, row_sums, lit, dark, band_starts, null, r_band,
                              float(hz))
        if fit.objective < kept.objective:
            kept = fit
    response = pinv @ (diff - kept.change).sum(axis=1)  # [3 primaries, 3 channels]
    ambient = float(row_sums[dark].sum())
    white = float(response.sum())
    return ColourResponse(response=response, ambient_terms=kept.terms, ripple_hz=kept.ripple_hz,
                          pixels=pixels,
                          flash_to_ambient=white / ambient if ambient > 0 else float("inf"))


@dataclass(frozen=True)
class _RoomLightFit:
    objective: float  # misfit left plus the prior's cost
    terms: np.ndarray  # [3]: drift per second, ripple sin and cos
    ripple_hz: float
    change: np.ndarray  # [L, R, 3]: the room light's change in each lit frame's face rows


def _fit_room_light(basis: np.ndarray, row_sums: np.ndarray, lit: list[int], dark: int,
                    band_starts: np.ndarray, null: np.ndarray, r_band: np.ndarray,
                    ripple_hz: float) -> _RoomLightFit:
    """The room light's terms at one ripple frequency. The ambient-only frame is the room light
    at its own level ``g_dark`` (row by row), a lit frame's at ``g_k``; what the lit frame has
    beyond its flash is ``(g_k − g_dark) / g_dark`` times the ambient-only frame, linear in the
    terms once ``g_dark`` is known: solved twice, the second time with the first's ``g_dark``."""
    terms = np.zeros(3)
    noise_var = _residual(null, r_band) / max(r_band.size, 1)
    unit = np.zeros(3)
    for _ in range(2):
        level_dark = 1.0 + basis[dark] @ terms  # [R]
        per_term = ((basis[lit] - basis[dark][None]) / level_dark[None, :, None])  # [L, R, 3]
        # the ambient-only frame scaled by each lit frame's change of room light, per band
        q_band = np.add.reduceat(per_term[:, :, None, :] * row_sums[dark][None, :, :, None],
                                 band_starts, axis=1)  # [L, B, 3 channels, 3 terms]
        lhs = np.einsum("ij,jbcq->ibcq", null, q_band).reshape(-1, 3) * _TERM_SCALE[None, :]
        rhs = np.einsum("ij,jbc->ibc", null, r_band).reshape(-1)
        # MAP fit: the terms' Gaussian prior against the misfit per equation, which is first
        # taken as what is left without the terms, then as what is left with them
        for _ in range(_MAP_ROUNDS):
            unit = np.linalg.solve(lhs.T @ lhs + noise_var * np.eye(3), lhs.T @ rhs)
            misfit = float(np.sum((rhs - lhs @ unit) ** 2))
            noise_var = max(misfit / max(rhs.size - 3, 1), 1e-30)
        terms = _TERM_SCALE * unit
    change = (per_term @ terms)[:, :, None] * row_sums[dark][None]  # [L, R, 3]
    corrected = r_band - np.add.reduceat(change, band_starts, axis=1)
    return _RoomLightFit(_residual(null, corrected) + noise_var * float(unit @ unit), terms,
                         ripple_hz, change)


def _band_starts(band: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, band[1:] != band[:-1]])


def _residual(null: np.ndarray, r_band: np.ndarray) -> float:
    """What the primaries cannot explain in the per-band differences (sum of squares)."""
    return float(np.sum(np.einsum("ij,jbc->ibc", null, r_band) ** 2))


__all__ = ["ROW_BANDS", "ColourResponse", "ColourResponseError", "estimate_colour_response",
           "face_region_mask", "linear_lut"]

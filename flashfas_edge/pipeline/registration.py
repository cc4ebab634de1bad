"""Landmarks that do not jitter: each state frame's face registered to the first one
(docs/ARCHITECTURE.md §1 step 6, `_core.register_translation`).

Over the ~0.35 s of the flash sequence a head that holds still barely moves, but a detector's
landmarks move by a few pixels from frame to frame (MTCNN: ~0.05 inter-ocular distances between
consecutive frames of a still face). That jitter both blurs the differential frames (each frame
is aligned on its own landmarks) and reads as head motion at the motion gate. The face itself
shows where it moved: the grey face crop of every frame, cut from the same box, is registered to
the first frame's to sub-pixel precision (normalised to zero mean and unit RMS, so the flash
level does not count), and every frame gets one landmark set — the detector's, averaged over the
frames once their registered shifts are taken out — moved by its own shift.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from flashfas_edge import _core
from flashfas_edge.capture.base import Frame
from flashfas_edge.pipeline.face_region import interocular_px

# The crop: a square of this many inter-ocular distances around the landmarks' centre (brow to
# chin, cheek to cheek: the rigid part of the face, little hair or background), resampled to
# CROP_PX pixels a side so the cost does not grow with the face's size.
CROP_SIDE_IOD = 2.0
CROP_PX = 64
# Registration is trusted only where it agrees with the detector to within this many inter-ocular
# distances (the detector's own jitter is ~0.05) in all frames but one: a crop with too little
# texture to lock on (an untextured face under ambient light alone, a noise-dominated dark frame)
# can converge anywhere, and then the detector's landmarks are kept. One frame may disagree: there
# the detector is the one that is off (seen: 0.18 IOD in a dark room, registration within 1 px of
# the renderer's truth), and the registered landmarks replace its.
MAX_DISAGREEMENT_IOD = 0.15
# Every frame must correlate with the reference frame this well once registered (normalised
# cross-correlation of the grey crops): a face under ambient light alone still shows its eyes,
# brows and mouth (live faces of a fresh 60-session simulated test split: lowest frame 0.58, in a
# bedroom; median 0.98); a crop where noise swamps an untextured face does not, and its shift
# means nothing. One frame may fall short when it is dark (a dark room's ambient-only frame,
# grey level ~20 of 255: 0.28–0.44 on the simulated kiosk): its shift is interpolated from the
# others' (the head barely moves in 0.4 s, and they show whether it did), and its detector
# landmarks, as noisy as its picture, are not used. A frame with the contrast to lock on that
# does not (a face that moved or turned) still stops the registration. The reference is the crop
# with the most contrast (the brightest state, as a rule), not the first frame, which may be that
# dark one.
MIN_CORRELATION = 0.4
# Dark: the crop's standard deviation below this share of the reference's (the simulated dark
# room's ambient-only crop: 0.15; its quarter-level state's: 0.45 and more).
DARK_CONTRAST = 0.25


def register_landmarks(
    frames: Sequence[Frame], landmarks: np.ndarray, detected: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(landmarks float32 [N, 5, 2] that follow the registered face, shifts float32 [N, 2] in
    pixels against the first frame), or None where the frames cannot be registered (the crop
    leaves the picture, more than one frame does not lock on, or they disagree with the
    detector): the caller keeps the detector's. ``detected`` (bool [N]): the frames whose
    ``landmarks`` come from the detector; the others (e.g. the ambient-only frame of a dark room,
    where the detector sees no face) get theirs from registration alone."""
    found = np.ones(len(frames), bool) if detected is None else np.asarray(detected, bool)
    if not found.any():
        return None
    seen = landmarks[found]
    centre = np.median(seen.mean(axis=1), axis=0)
    iod = float(np.median([interocular_px(p) for p in seen]))
    side = CROP_SIDE_IOD * iod
    x0, y0 = float(centre[0] - side / 2), float(centre[1] - side / 2)
    h, w = frames[0].image.shape[:2]
    if x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h or side < 8:
        return None
    scale = CROP_PX / side
    # crop and resample in one warp: source = (x0, y0) + p / scale
    to_crop = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    crops = np.empty((len(frames), CROP_PX, CROP_PX), np.float32)
    for k, frame in enumerate(frames):
        grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
        crops[k] = cv2.warpAffine(
            grey, to_crop, (CROP_PX, CROP_PX), flags=cv2.INTER_AREA
        ).astype(np.float32)
    # the reference first: shifts come back against it
    contrast = crops.reshape(len(frames), -1).std(axis=1)
    reference = int(np.argmax(contrast))
    order = np.array([reference] + [k for k in range(len(frames)) if k != reference])
    try:
        ordered, ordered_correlations = _core.register_translation(crops[order])
    except ValueError:  # a flat crop: nothing to register on
        return None
    shifts = np.empty_like(ordered)
    correlations = np.empty_like(ordered_correlations)
    shifts[order], correlations[order] = ordered, ordered_correlations
    weak = ~np.all(np.isfinite(shifts), axis=1) | ~(correlations >= MIN_CORRELATION)
    dark = contrast < DARK_CONTRAST * contrast[reference]
    if np.any(weak & ~dark) or weak.sum() > 1:
        return None
    if weak.any():  # its shift from the frames before and after it (the nearest at an end)
        k = int(np.argmax(weak))
        good = np.flatnonzero(~weak)
        shifts[k] = [np.interp(k, good, shifts[good, axis]) for axis in range(2)]
    shifts = (shifts - shifts[0]) / np.float32(scale)  # against the first frame, in pixels
    trusted = found & ~weak
    seen, seen_shifts = landmarks[trusted], shifts[trusted]
    if len(seen) < 2:
        return None
    # The detector's face centre against the registered one, up to one common offset (the median:
    # any single frame, the first included, may be the detector's outlier).
    gaps = seen.mean(axis=1) - seen_shifts
    gaps -= np.median(gaps, axis=0)
    agree = np.linalg.norm(gaps, axis=1) <= MAX_DISAGREEMENT_IOD * iod
    # one frame in all may be off: the detector's outlier, or a frame too dark to register
    if int(agree.sum()) < max(2, len(seen) - (0 if weak.any() else 1)):
        return None
    # One landmark set for the face, the detector's averaged with each frame's shift taken out
    # (the median: a frame the detector got wrong does not pull it), moved by each shift.
    steady = np.median(seen - seen_shifts[:, None, :], axis=0)
    registered = (steady[None] + shifts[:, None, :]).astype(np.float32)
    return registered, shifts.astype(np.float32)

"""Type stubs for the C++ core ``flashfas_edge._core`` (core_cpp/, pybind11).

All kernels take numpy arrays, check shapes / dtypes / layout once (``TypeError`` for a wrong type
or dtype, ``ValueError`` for a wrong shape, layout or value) and release the GIL while they run.
Image stacks (``frames``, ``aligned``) must be C-contiguous uint8 ``[T, H, W, 3]``; they are read
in place, never copied. Point arrays may be float32 or float64 with any strides and must be finite.
"""

from typing import Final, Literal, overload

import numpy as np
import numpy.typing as npt

#: Normalisation applied by :func:`diffnorm` / :func:`preprocess` (docs/MODEL_BUNDLE.md).
NORMALISATION: Final[str]  # "global_rms"
#: eps of the global-RMS normalisation, in units of full scale (1.0 = 255 grey levels).
GLOBAL_RMS_EPS: Final[float]  # 1e-3

def differential_matrix(n0: int) -> npt.NDArray[np.float32]:
    """ATR-FAS §3.2 differential matrix D, float32 [2(n0-2), n0], n0 in [3, 8].

    Rows 0..n0-3: brightest minus each middle frame; rows n0-2..: each middle minus the darkest.
    """

def estimate_similarity(
    src: npt.NDArray[np.floating], dst: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Least-squares similarity (Umeyama, no reflection) mapping src [K, 2] onto dst [K, 2].

    Returns float64 [2, 3] ``[[a, -b, tx], [b, a, ty]]``. K >= 2. Coinciding points or a
    zero-scale fit raise ``ValueError``, never NaN.
    """

def register_translation(
    crops: npt.NDArray[np.float32], levels: int = 3, max_iterations: int = 30
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Sub-pixel translation of each crop [N, H, W] against ``crops[0]``.

    Returns (shifts float32 [N, 2] (x, y), correlations float32 [N]): ``crops[k](p + s_k) ≈
    crops[0](p)``, ``s_0 = (0, 0)``; the normalised cross-correlation of ``crops[0]`` with each
    registered crop says how well it locked on (a noise-dominated crop scores low). Each crop is
    normalised to zero mean and unit RMS first, so another flash level (gain, offset) does not
    move the estimate; inverse-compositional Lucas–Kanade, coarse to fine over ``levels`` 2×
    pyramid levels. NaN (in both) for a crop that does not converge inside a quarter of the crop;
    a flat ``crops[0]`` raises ``ValueError``. Crops must be C-contiguous float32, 8 to 4096
    pixels on a side, finite.
    """

def align_faces(
    frames: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.floating],
    template: npt.NDArray[np.floating],
    size: int,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Warp frames [T, H, W, 3] onto the template -> (aligned [T, size, size, 3], outside [T]).

    Frame t uses ``estimate_similarity(landmarks[t], template)`` (source -> aligned), bilinear
    like ``cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT, 0)`` (at most 1 grey level apart).
    Source taps outside the frame read 0; ``outside[t]`` counts output pixels that used such a
    tap with non-zero weight. landmarks [T, K, 2], template [K, 2], size in [2, 4096].
    """

def diffnorm(
    aligned: npt.NDArray[np.uint8], order: npt.NDArray[np.integer], n0: int
) -> npt.NDArray[np.float32]:
    """Differential normalisation -> float32 [2(n0-2), 3, S, S] (NCHW, channel order kept).

    ``aligned`` is [n0, S, S, 3]; ``order[j]`` is the index of the j-th brightest frame (a
    permutation of 0..n0-1). F = aligned[order] / 255, X = D · F, then
    ``X / max(sqrt(mean(X**2)), GLOBAL_RMS_EPS)`` over the whole sample: one scale removes
    exposure / gain and the global albedo while the spatial shading pattern survives (per-pixel
    ratios would cancel the shape when all flashes come from one direction, docs/ARCHITECTURE.md
    §2).
    """

@overload
def preprocess(
    frames: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.floating],
    template: npt.NDArray[np.floating],
    order: npt.NDArray[np.integer],
    n0: int,
    size: int,
    *,
    with_outside_counts: Literal[False] = False,
) -> npt.NDArray[np.float32]:
    """Fused align + diffnorm: frames [n0, H, W, 3] -> float32 [2(n0-2), 3, size, size].

    Bit-identical to ``diffnorm(align_faces(frames, landmarks, template, size)[0], order, n0)``
    but one pass with no full-size intermediate; single-threaded. With
    ``with_outside_counts=True`` also returns ``align_faces``' int64 [n0] outside counts (frame
    order): how many aligned pixels were filled because the face left the camera frame.
    """
@overload
def preprocess(
    frames: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.floating],
    template: npt.NDArray[np.floating],
    order: npt.NDArray[np.integer],
    n0: int,
    size: int,
    *,
    with_outside_counts: Literal[True],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def assign_frames(
    frame_times_us: npt.NDArray[np.integer],
    exposure_us: int,
    readout_us: int,
    flash_onsets_us: npt.NDArray[np.integer],
    latency_us: int,
    state_duration_us: int,
) -> npt.NDArray[np.int64]:
    """Per flash state, the frame whose whole exposure saw only that state; -1 if none.

    ``frame_times_us[t]`` is the exposure start of the first sensor row (sorted); the frame
    integrates over [t, t + readout_us + exposure_us] (rolling shutter). State s is on camera
    during [onset_s + latency_us, end_s + latency_us), end_s = onset_{s+1} (last: onset +
    state_duration_us); onsets strictly increasing. Among clean frames the one with the largest
    margin to both window edges wins (earliest on ties). Returns int64 [len(flash_onsets_us)].
    """

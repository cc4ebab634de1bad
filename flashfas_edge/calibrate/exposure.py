"""Exposure, gain and white balance: one manual setting, found with the flash, then held.

The face under the brightest flash state is brought to where the simulator's auto exposure leaves
the faces the model was trained on (docs/DATASET.md): a face mean of 0.13 of full scale in linear
light (~100 levels at gamma 2.2, measured on the simulated kiosk's settled exposure), lowered
until the face's highlights (99th percentile, any channel) stay below ``HIGHLIGHT_MAX_DL``, so no
state clips; the darkest state (ambient only) must stay above the noise floor. Exposure is spent
before gain (gain multiplies noise), up to the camera's longest exposure. White balance is held
where the camera has it: the model was trained on locked white balance, and the colour response
(colour.py) records how the camera sees each flash state.

Each step plays dark then bright for ``STATE_US`` each and measures only frames wholly inside a
state for any latency up to ``MAX_LATENCY_US``, so it needs no latency yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from flashfas_edge.calibrate.latency import MAX_LATENCY_US
from flashfas_edge.calibrate.rig import BRIGHT, DARK, CalibrationError, Recording, Rig
from flashfas_edge.capture.base import ExposureControl, ExposureSettings, Frame
from flashfas_edge.pipeline.face_region import face_crop, pixel_noise_sigma

TARGET_FACE_LINEAR = 0.13  # brightest state's face mean, share of full scale in linear light
HIGHLIGHT_MAX_DL = 240  # face 99th percentile under the brightest state (saturation gate: 250)
NOISE_FLOOR_SIGMAS = 3.0  # the ambient-only face mean must exceed this many noise σ
STATE_US = 480_000
_SETTLE_US = 10_000
_MAX_STEPS = 5


@dataclass(frozen=True)
class FaceStats:
    mean_dl: float  # face mean level (all channels)
    mean_linear: float  # face mean in linear light, 0..1
    p99_dl: float  # 99th percentile of the brightest channel
    saturated_frac: float  # share of face pixels with a channel at ≥ 250
    black_frac: float  # share at 0 in every channel
    noise_dl: float  # per-pixel noise σ (Immerkær)
    mean_rgb_linear: tuple[float, float, float]


@dataclass(frozen=True)
class ExposureResult:
    settings: ExposureSettings
    bright: FaceStats
    dark: FaceStats
    steps: int
    limited_by: str  # "target", "highlights", "shortest exposure", "longest exposure and gain"
    points: np.ndarray  # the face's landmarks, float [5, 2]

    @property
    def clipped(self) -> bool:
        return self.bright.p99_dl >= 250 or self.bright.saturated_frac > 0.01

    @property
    def dark_above_noise(self) -> bool:
        return self.dark.mean_dl >= NOISE_FLOOR_SIGMAS * max(self.dark.noise_dl, 0.5) \
            and self.dark.black_frac <= 0.01

    def summary(self) -> dict[str, object]:
        return {
            "exposure_us": self.settings.exposure_us,
            "analog_gain": round(self.settings.analog_gain, 3),
            "white_balance_gains": [round(g, 4) for g in self.settings.white_balance_gains],
            "bright_face_dl": round(self.bright.mean_dl, 1),
            "bright_face_p99_dl": round(self.bright.p99_dl, 1),
            "bright_saturated_frac": round(self.bright.saturated_frac, 4),
            "dark_face_dl": round(self.dark.mean_dl, 2),
            "dark_noise_dl": round(self.dark.noise_dl, 3),
            "dark_black_frac": round(self.dark.black_frac, 4),
            "steps": self.steps,
            "limited_by": self.limited_by,
        }


def face_stats(frames: list[Frame], points: np.ndarray, gamma: float) -> FaceStats:
    """Face-region statistics pooled over frames of one steady state."""
    pixels, noises = [], []
    for frame in frames:
        crop = face_crop(frame.image, points)
        pixels.append(crop.patch[crop.mask > 0])
        noises.append(pixel_noise_sigma(crop))
    px = np.concatenate(pixels).astype(np.float64)  # [N, 3]
    linear = np.power(px / 255.0, gamma)
    brightest = px.max(axis=1)
    return FaceStats(
        mean_dl=float(px.mean()),
        mean_linear=float(linear.mean()),
        p99_dl=float(np.percentile(brightest, 99)),
        saturated_frac=float((brightest >= 250).mean()),
        black_frac=float((px.max(axis=1) <= 0).mean()),
        noise_dl=float(np.median(noises)),
        mean_rgb_linear=tuple(float(v) for v in linear.mean(axis=0)),  # type: ignore[arg-type]
    )


def steady_frames(recording: Recording, slot: int, max_latency_us: int = MAX_LATENCY_US
                  ) -> list[Frame]:
    """Frames wholly inside slot ``slot`` whatever the latency up to ``max_latency_us``."""
    onsets = recording.onsets_us
    t1 = onsets[slot + 1] if slot + 1 < len(onsets) else recording.playback.end_us
    t0 = onsets[slot] + max_latency_us + _SETTLE_US
    return [f for f in recording.frames
            if f.t_start_us >= t0 and f.t_start_us + f.readout_us + f.exposure_us <= t1]


def exposure_control(rig: Rig) -> ExposureControl:
    camera = rig.camera
    if not isinstance(camera, ExposureControl):
        raise CalibrationError(
            f"camera {rig.info().name} cannot lock its exposure, gain and white balance (no "
            "manual controls): flash liveness needs them held; use a camera whose exposure can "
            "be set by hand (docs/CALIBRATE.md)")
    return camera


def _split(product: float, control: ExposureControl) -> tuple[ExposureSettings, str]:
    """Exposure × gain = ``product`` (µs at gain 1): exposure first, then gain."""
    limits = control.exposure_range()
    wb = control.exposure_settings().white_balance_gains
    exposure = min(max(product, limits.min_exposure_us), limits.max_exposure_us)
    gain = min(max(product / exposure, 1.0), limits.max_gain)
    limited = "target"
    if product < limits.min_exposure_us:
        limited = "shortest exposure"
    elif product > limits.max_exposure_us * limits.max_gain:
        limited = "longest exposure and gain"
    return ExposureSettings(int(round(exposure)), float(gain), wb), limited


def lock(control: ExposureControl, settings: ExposureSettings) -> ExposureSettings:
    held = control.lock_exposure(settings)
    time.sleep(0.15)  # frames exposed before the change may still be in the camera's queue
    return held


def set_exposure(rig: Rig, gamma: float, progress: object = None) -> ExposureResult:
    control = exposure_control(rig)
    settings = lock(control, control.exposure_settings())
    limited = "target"
    points: np.ndarray | None = None
    for step in range(1, _MAX_STEPS + 1):
        recording = rig.play([DARK, BRIGHT], [STATE_US, STATE_US])
        dark_frames, bright_frames = steady_frames(recording, 0), steady_frames(recording, 1)
        if not dark_frames or not bright_frames:
            raise CalibrationError("the camera delivered too few frames while the flash held "
                                   "still (a busy machine?)")
        points = rig.face_points(bright_frames)
        bright = face_stats(bright_frames, points, gamma)
        dark = face_stats(dark_frames, points, gamma)
        if callable(progress):
            progress(step, _MAX_STEPS)
        if bright.p99_dl >= 250 or bright.saturated_frac > 0.01:
            scale = 0.4  # clipped: the measurement says only "too bright"
        else:
            highlight = (HIGHLIGHT_MAX_DL / 255.0) ** gamma / max(
                (bright.p99_dl / 255.0) ** gamma, 1e-6)
            scale = min(TARGET_FACE_LINEAR / max(bright.mean_linear, 1e-6), highlight)
            if abs(scale - 1.0) < 0.12:
                result_limited = "highlights" if scale == highlight else limited
                return ExposureResult(settings, bright, dark, step, result_limited, points)
        product = settings.exposure_us * settings.analog_gain * scale
        wanted, limited = _split(product, control)
        if wanted == settings or step == _MAX_STEPS:  # at a limit, or out of steps
            return ExposureResult(settings, bright, dark, step, limited, points)
        settings = lock(control, wanted)
    raise AssertionError("unreachable: the last step returns")

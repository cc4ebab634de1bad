"""The pipeline's section of the daemon configuration (docs/ARCHITECTURE.md §6): validated once, as
data.

The daemon's config tree (``flashfas_edge/api``) embeds :class:`PipelineConfig`; every value has a
default that works on the simulated kiosk, and each field says what it bounds and why.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flashfas_edge.face.config import LandmarkConfig
from flashfas_edge.flash_levels import DEFAULT_LEVELS, check_levels


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Bounds that the configuration and the calibration file share (flashfas_edge/config.py), each
# written once so that a value calibration accepts is never refused when it is applied.
# Decision threshold on P(live): 0 would accept every face; 1 still needs P(live) = 1.
DecisionThreshold = Annotated[float, Field(gt=0, le=1)]
# Display/LED-to-camera latency in µs: a second is far beyond any display or LED panel.
LatencyUs = Annotated[int, Field(ge=0, le=1_000_000)]


class ChallengeConfig(_Section):
    """Step 1: the random flash sequence. Levels are sorted brightest first for diffnorm."""

    # N0 = 5 intensity levels (ATR-FAS §5.3.3); the darkest one shows the ambient-only face.
    levels: tuple[float, ...] = DEFAULT_LEVELS
    # Colours the challenge may draw from where the flash surface can show colour ("dynamic flash
    # in sequential colours with different intensity", ATR-FAS §3.2). Empty: white only.
    colour_palette: tuple[tuple[float, float, float], ...] = ()
    # How long each state shows. None: the shortest that still guarantees one clean frame per
    # state whatever the camera's phase — one frame period + exposure + rolling-shutter readout
    # + ``settle_us`` for the display's transition and latency jitter (challenge.py).
    state_duration_us: int | None = Field(default=None, ge=10_000, le=2_000_000)
    settle_us: int = Field(default=8_000, ge=0, le=200_000)
    # Timing entropy (docs/SAFETY.md §3): each state but the last lasts state_duration_us +
    # j × timing_step_us, j uniform in 0..timing_steps − 1, so a recording's onsets rarely fit a
    # fresh challenge (the last state meets the idle screen, whose colour the camera cannot check:
    # it lasts state_duration_us). Whether the camera tells the patterns apart is measured, not
    # assumed (scripts/measure_replay_space.py).
    timing_steps: int = Field(default=3, ge=1, le=8)
    timing_step_us: int = Field(default=25_000, ge=0, le=200_000)
    # Frame-locked timing (docs/SAFETY.md §3), used instead of the above where the flash surface
    # starts states at their commanded time (``FlashDriver.holds_timing``) and the camera leaves
    # a gap between one frame's last row and the next frame's first at least the display's rise
    # + ``frame_lock_margin_us`` wide: every onset then reaches the camera inside that gap, each
    # state lasts 1 + j whole frame periods (j uniform in 0..frame_lock_steps − 1; the last state
    # one period), and every frame shows one state. A state then needs one period, not one
    # period + exposure + readout + settle_us, and every timing pattern is seen by whole frames.
    # The margin is the host's and the surface's timing error allowed on either side, summed.
    frame_lock: bool = True
    frame_lock_steps: int = Field(default=4, ge=1, le=8)
    frame_lock_margin_us: int = Field(default=4_000, ge=0, le=50_000)
    # Photosensitive safety (WCAG 2.3.1, flash/safety.py, docs/SAFETY.md): a drawn challenge may
    # show at most this many flashes counted with the idle screen before and after it (one below
    # WCAG's three: the margin for a retry and a kiosk UI that flashes on its own) ...
    max_flashes_per_challenge: int = Field(default=2, ge=1, le=3)
    # ... and consecutive challenges at most WCAG's three in any one second: the next sequence
    # waits (up to max_safety_wait_s, else retry/flash_unsafe) until it fits.
    max_flashes_per_s: int = Field(default=3, ge=1, le=3)
    max_safety_wait_s: float = Field(default=1.5, ge=0, le=10)
    # Linear RGB of the idle screen the kiosk shows between checks, at full intensity. None: not
    # known, every challenge is checked against the worst idle colour.
    idle_rgb: tuple[float, float, float] | None = None

    @field_validator("levels")
    @classmethod
    def _levels_valid(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        return check_levels(levels)  # N0 range, [0, 1], distinct; sorted brightest first

    @field_validator("colour_palette")
    @classmethod
    def _palette_valid(
        cls, palette: tuple[tuple[float, float, float], ...]
    ) -> tuple[tuple[float, float, float], ...]:
        for rgb in palette:
            if any(not 0.0 <= c <= 1.0 for c in rgb) or max(rgb) <= 0.0:
                raise ValueError(f"palette colour {rgb} must be in [0, 1] and not black")
        return palette

    @field_validator("idle_rgb")
    @classmethod
    def _idle_valid(
        cls, rgb: tuple[float, float, float] | None
    ) -> tuple[float, float, float] | None:
        if rgb is not None and any(not 0.0 <= c <= 1.0 for c in rgb):
            raise ValueError(f"idle_rgb {rgb} must be in [0, 1]")
        return rgb

    @model_validator(mode="after")
    def _safety_consistent(self) -> ChallengeConfig:
        if self.max_flashes_per_challenge > self.max_flashes_per_s:
            raise ValueError("max_flashes_per_challenge cannot exceed max_flashes_per_s")
        return self

    @property
    def n0(self) -> int:
        return len(self.levels)


class StageTimeouts(_Section):
    """Upper bounds per stage (docs/ARCHITECTURE.md §1); exceeded → retry."""

    flash_margin_s: float = Field(default=1.0, gt=0, le=30)  # beyond the sequence's own length
    capture_s: float = Field(default=1.0, gt=0, le=30)  # waiting for the last frames after play
    landmarks_s: float = Field(default=2.0, gt=0, le=60)
    verify_s: float = Field(default=1.0, gt=0, le=60)
    preprocess_s: float = Field(default=1.0, gt=0, le=60)
    infer_s: float = Field(default=3.0, gt=0, le=120)


class GateThresholds(_Section):
    """Step 5 quality gates. Each failing gate is a ``retry`` with its own reason."""

    min_face_score: float = Field(default=0.6, ge=0, le=1)
    # A second face counts when its box is at least this fraction of the main face's box area.
    second_face_min_area_ratio: float = Field(default=0.25, gt=0, le=1)
    # Inter-ocular distance in pixels: below it the aligned crop is mostly interpolation.
    min_interocular_px: float = Field(default=24.0, gt=0)
    # Inter-ocular distance over frame height: above it (a face ~2.7 IODs tall fills 90 % of the
    # frame) the face leaves the picture or the flash falloff across the face dominates. Measured
    # on landmarks, not boxes, so every provider is held to the same size.
    max_interocular_frac: float = Field(default=0.33, gt=0, le=1)
    # Landmark motion between state frames, in inter-ocular distances. Alignment removes a
    # similarity transform per frame, but rotation in depth and blur do not align away.
    max_motion_iod: float = Field(default=0.12, gt=0)
    # Exposure of the face region, in 8-bit levels. Brightest state's face mean: below ~40
    # levels (≈2 % linear at gamma 2.2) read noise and 8-bit steps swamp the flash differences
    # the networks read.
    min_face_level: float = Field(default=40.0, ge=0, le=255)
    saturation_level: int = Field(default=250, ge=1, le=255)
    # Clipped face pixels under ambient light alone (the darkest state): there no flash level
    # can be told from another, so every differential frame loses them.
    max_saturated_frac_ambient: float = Field(default=0.10, ge=0, le=1)
    # Clipped face pixels in any state frame: exposure is locked for the idle display, so the
    # brightest flash may clip highlights; only when most of the face clips is it unusable.
    max_saturated_frac_flash: float = Field(default=0.40, ge=0, le=1)
    # Flash response (range of the face mean over the states) over the per-pixel noise of the
    # darkest frame, and in absolute levels. The smallest differential frame carries a quarter
    # of the response (N0 = 5, ATR-FAS §3.2): at SNR 2 it is ~0.35 σ per pixel, which the
    # networks' 4×4 stem still lifts above 1 σ. Below either: too much ambient light → retry.
    min_flash_snr: float = Field(default=2.0, gt=0)
    min_flash_response_dl: float = Field(default=2.0, ge=0)
    # Challenge verification (anti-replay, reflection_check.py): the fit r of the face's per-state
    # response to the commanded sequence must reach a floor, and every other order of the same
    # states must leave at least ``min_challenge_residual_ratio`` times more variance
    # unexplained (a replayed order leaves *less*: ratio < 1; a true match under noise ~2–10⁴).
    min_challenge_corr: float = Field(default=0.9, ge=0, le=1)
    min_challenge_residual_ratio: float = Field(default=1.5, gt=1.0, le=1e6)
    # A failed verification is called a spoof only when the flash response is clearly visible;
    # below this SNR the mismatch may be measurement noise (ambient drift, flicker) → retry.
    min_flash_snr_for_mismatch: float = Field(default=4.0, gt=0)
    # Timing verification (timing_check.py): every frame of the sequence must lie within this
    # many level steps of the line its played onsets predict. A moved onset seen by the face
    # rows for a whole exposure leaves a full step; rise time, flicker and motion of a live face
    # stay well below half of one (docs/SAFETY.md §3).
    max_timing_residual_steps: float = Field(default=0.5, gt=0, le=2.0)
    # Between the limit and this, the check answers retry / challenge_unclear instead of spoof:
    # a live face's timing error reaches 0.5–0.9 steps about once in 40 checks (docs/SAFETY.md)
    max_timing_residual_for_retry: float = Field(default=1.0, gt=0, le=4.0)
    # Frame-locked checks are fitted once more with the room light's mains ripple and drift
    # modelled (timing_check.py). Live faces on the simulated kiosk stayed under 0.09 steps there
    # in 200 checks, a quarter of the first fit's residual (docs/SAFETY.md §3). Above this limit:
    # retry / challenge_unclear (never spoof: an unusual lamp must not call a live face an
    # attack).
    max_ambient_fit_residual_steps: float = Field(default=0.2, gt=0, le=2.0)


class TrackingConfig(_Section):
    """The face before and during the flash (presence.py, capture_tracker.py)."""

    # Play no flash until the newest frames show one face, in range and still. Off: the check
    # flashes at whatever is there and the gates judge the state frames afterwards.
    presence: bool = True
    # How long a check waits for a suitable face before answering retry (the person may still be
    # stepping up); the flash has not played by then.
    presence_wait_s: float = Field(default=1.0, ge=0, le=30)
    # Frames the face must hold still over: 3 frames at 30 fps ≈ 67 ms, so the motion budget
    # covers about a fifth of the ~0.35 s flash sequence.
    presence_frames: int = Field(default=3, ge=2, le=30)
    # Motion allowed over those frames, in inter-ocular distances: a tighter budget than the
    # state frames' (max_motion_iod over ~0.35 s) for a window a fifth as long. A still face
    # registers at ~0.005 (registration.py); a person walking past moves ~0.3 per frame.
    presence_max_motion_iod: float = Field(default=0.05, gt=0)
    # Track the face in each frame as it arrives during the flash (a thread), so that only the
    # last frames' landmarks are left after it.
    track_during_capture: bool = True
    # Register each frame's face crop to the first one (C++ core) and move one landmark set by
    # the registered shifts: the detector's frame-to-frame jitter neither blurs the differential
    # frames nor reads as motion (registration.py).
    register_frames: bool = True


class PipelineConfig(_Section):
    challenge: ChallengeConfig = ChallengeConfig()
    timeouts: StageTimeouts = StageTimeouts()
    gates: GateThresholds = GateThresholds()
    landmarks: LandmarkConfig = LandmarkConfig()
    tracking: TrackingConfig = TrackingConfig()
    # Display/LED-to-camera latency (calibration writes it; docs/ARCHITECTURE.md §6).
    latency_us: LatencyUs = 0
    # Camera transfer function (power law) used to linearise levels for challenge verification.
    camera_gamma: float = Field(default=2.2, ge=1.0, le=3.0)
    # Rise time of the flash surface's light between states, µs: an LCD's transition (~4 ms), an
    # LED panel's ~20 µs. The timing verification models it; a wrong value moves every predicted
    # transition, so an LED kiosk must set it (the simulated kiosk sets its device's own).
    display_rise_us: int = Field(default=4_000, ge=0, le=50_000)
    # Decision threshold from calibration; None: the bundle's default (MODEL_BUNDLE.md).
    threshold_override: DecisionThreshold | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.gates.min_challenge_corr < 0.5:
            raise ValueError("challenge verification cannot be disabled (anti-replay)")
        if self.gates.max_timing_residual_for_retry < self.gates.max_timing_residual_steps:
            raise ValueError("max_timing_residual_for_retry must be at least "
                             "max_timing_residual_steps")
        if self.gates.min_flash_snr_for_mismatch < self.gates.min_flash_snr:
            raise ValueError("min_flash_snr_for_mismatch must be at least min_flash_snr")
        return self

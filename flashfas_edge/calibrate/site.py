"""Is the install site fit for flash liveness? Pass / warn / fail, each finding with its advice.

Limits are the pipeline's own gates (pipeline/config.py), so the verdict says what checks will
do here: below ``min_flash_snr`` every check answers retry (low_flash_snr); below
``min_flash_snr_for_mismatch`` a replayed video is answered retry instead of spoof.

Usable distance range: the flash falls off with the square of the distance while ambient light
and noise do not, so SNR(d) = SNR(d₀) · (d₀ / d)² from the SNR measured at the face's distance
d₀ (from its inter-ocular distance, 63 mm, and the camera's field of view); the face size gates
bound it too (too near, too far).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from flashfas_edge.calibrate.colour import ColourResult
from flashfas_edge.calibrate.exposure import ExposureResult
from flashfas_edge.calibrate.flicker import FlickerResult
from flashfas_edge.calibrate.latency import LatencyResult
from flashfas_edge.config import SiteAssessment
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_region import interocular_px

INTEROCULAR_M = 0.063  # adult mean inter-pupillary distance
_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class DistanceModel:
    face_distance_m: float
    snr_at_face: float
    focal_px: float
    near_m: float  # face size gate: closer and the face is too large
    far_size_m: float  # face size gate: farther and the face is too small

    def snr_at(self, distance_m: np.ndarray | float) -> np.ndarray:
        return self.snr_at_face * (self.face_distance_m / np.asarray(distance_m)) ** 2

    def usable_range(self, min_snr: float) -> tuple[float, float] | None:
        far_snr = self.face_distance_m * math.sqrt(self.snr_at_face / min_snr) \
            if self.snr_at_face > 0 else 0.0
        far = min(self.far_size_m, far_snr)
        return (self.near_m, far) if far > self.near_m else None


def distance_model(points: np.ndarray, width: int, height: int, hfov_deg: float,
                   snr: float, gates: GateThresholds) -> DistanceModel:
    focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    iod = max(interocular_px(points), 1e-3)
    return DistanceModel(
        face_distance_m=INTEROCULAR_M * focal / iod,
        snr_at_face=snr,
        focal_px=focal,
        near_m=INTEROCULAR_M * focal / (gates.max_interocular_frac * height),
        far_size_m=INTEROCULAR_M * focal / gates.min_interocular_px,
    )


@dataclass
class Findings:
    items: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    def add(self, level: str, text: str) -> None:
        self.items.append((level, text))

    @property
    def verdict(self) -> str:
        return max((lvl for lvl, _ in self.items), key=_RANK.__getitem__, default="pass")

    def lines(self) -> tuple[str, ...]:
        return tuple(f"{lvl}: {text}" for lvl, text in self.items)


def assess_site(exposure: ExposureResult, latency: LatencyResult, colour: ColourResult,
                flicker: FlickerResult, distance: DistanceModel, gates: GateThresholds,
                frame_period_us: float) -> tuple[SiteAssessment, Findings]:
    found = Findings()
    snr = colour.flash_snr
    if snr < gates.min_flash_snr:
        found.add("fail", f"strong ambient light on the face (direct sunlight?): flash SNR "
                          f"{snr:.1f}, below {gates.min_flash_snr:g} — every check would answer "
                          "retry; shade the kiosk, turn it away from the window, or use the LED "
                          "panel")
    elif snr < gates.min_flash_snr_for_mismatch:
        found.add("warn", f"strong ambient light on the face (direct sunlight?): flash SNR "
                          f"{snr:.1f}, below {gates.min_flash_snr_for_mismatch:g} — users get "
                          "retries and a replay is answered retry, not spoof; shade the kiosk "
                          "or use the LED panel")
    else:
        found.add("pass", f"flash SNR {snr:.1f} at the face (limit "
                          f"{gates.min_flash_snr_for_mismatch:g})")
    if exposure.clipped:
        found.add("fail", f"the face clips even at {exposure.settings.exposure_us} µs: direct "
                          "light on the face — shade the kiosk")
    if not exposure.dark_above_noise:
        found.add("warn", f"without the flash the face is at {exposure.dark.mean_dl:.1f} levels, "
                          f"within the noise ({exposure.dark.noise_dl:.1f}): add some steady "
                          "room light at the kiosk")
    if exposure.limited_by == "longest exposure and gain":
        found.add("warn", "the camera is at its longest exposure and highest gain: the face is "
                          "dim — check the flash faces the user and the lens is clean")
    if flicker.ripple_hz is not None:
        period_ms = 1000 / flicker.ripple_hz
        seen = flicker.seen_modulation
        # the ripple on the ambient-only face (levels; gamma ~2.2 compresses a linear ripple)
        ripple_dl = seen * exposure.dark.mean_dl / 2.2
        step_dl = colour.response_dl / max(len(colour.levels) - 1, 1)
        level = "warn" if ripple_dl > step_dl / 4 else "pass"
        fix = "replace the flickering lamps near the kiosk, or " if level == "warn" else ""
        found.add(level, f"mains flicker: {flicker.ripple_hz:g} Hz ripple "
                         f"({flicker.mains_hz:g} Hz mains), {100 * seen:.1f} % as the camera sees "
                         f"it ({ripple_dl:.1f} levels on the face against {step_dl:.1f} per flash "
                         f"level) — {fix}an exposure of {period_ms:.1f} ms (one ripple period) "
                         "cancels it")
    else:
        found.add("pass", "no mains flicker seen")
    iqr_ms = latency.spread_ms
    if iqr_ms * 1000 > frame_period_us / 2:
        found.add("warn", f"flash latency varies (IQR {iqr_ms:.1f} ms, over half a frame): the "
                          "flash driver or the camera's clock is unsteady; check the load on "
                          "the board")
    usable = distance.usable_range(gates.min_flash_snr_for_mismatch)
    if usable is None:
        found.add("fail" if snr < gates.min_flash_snr else "warn",
                  f"no distance where the flash SNR reaches {gates.min_flash_snr_for_mismatch:g} "
                  "and the face size gates pass")
    else:
        near, far = usable
        level = "warn" if far - near < 0.15 else "pass"
        found.add(level, f"usable distance {near:.2f}–{far:.2f} m (face measured at "
                         f"{distance.face_distance_m:.2f} m)")
    site = SiteAssessment(
        verdict=found.verdict,  # type: ignore[arg-type]
        findings=found.lines(),
        flash_snr=round(snr, 3),
        mains_hz=flicker.mains_hz,
        flicker_modulation=None if flicker.ripple_hz is None else round(flicker.seen_modulation, 5),
        distance_range_m=None if usable is None else (round(usable[0], 3), round(usable[1], 3)),
    )
    return site, found

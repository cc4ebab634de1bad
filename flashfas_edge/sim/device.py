"""Kiosk device profiles: camera + display pairs that the split protocols keep apart (ATR-FAS §4.2
trains and tests on different phones; we train and test on different kiosk builds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.kiosk_light import KioskDisplay


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    hfov_deg: float
    fps: float
    exposure_us: int
    readout_us: int  # at 480 sensor rows; scales with the chosen height
    full_well_e: float
    read_noise_e: float
    max_gain: float
    gamma: float
    wb_gains: tuple[float, float, float]  # locked white balance
    crosstalk: float  # how much each display primary leaks into the other camera channels
    jpeg_quality: int | None
    latency_us: int  # display-to-camera latency (the calibrated value)
    latency_jitter_us: int
    display_rise_us: int  # LCD/LED transition time between flash states
    display_w_m: float
    display_h_m: float
    display_gap_m: float  # from the lens down to the display's top edge
    display_radiance: float

    def display(self) -> KioskDisplay:
        return KioskDisplay(self.display_w_m, self.display_h_m,
                            self.display_gap_m + self.display_h_m / 2, self.display_radiance)

    def crosstalk_matrix(self) -> np.ndarray:
        x = self.crosstalk
        return np.array([[1 - 2 * x, x, x], [x, 1 - 2 * x, x], [x, x, 1 - 2 * x]], np.float32)


def _p(name, hfov, fps, exp, ro, fw, rn, gain, gamma, wb, xt, jpeg, lat, rise, dw, dh, gap, rad):
    return DeviceProfile(name, hfov, fps, exp, ro, fw, rn, gain, gamma, wb, xt, jpeg, lat, 400,
                         rise, dw, dh, gap, rad)


# Nine builds: 15.6" and 10" displays, 7" panels, LED-bar-like bright panels; USB and MIPI cameras.
PROFILES: tuple[DeviceProfile, ...] = (
    _p("kiosk15_usb", 68, 30, 8000, 22000, 6000, 3.0, 16, 2.2, (1.0, 1.0, 1.05), 0.06, None,
       55000, 6000, 0.34, 0.19, 0.015, 2.0),
    _p("kiosk15_mipi", 62, 30, 6000, 16000, 9000, 2.0, 12, 2.1, (1.05, 1.0, 1.1), 0.04, None,
       40000, 4000, 0.34, 0.19, 0.02, 2.2),
    _p("kiosk10_usb", 72, 30, 10000, 25000, 5000, 3.5, 16, 2.3, (0.95, 1.0, 1.0), 0.08, 90,
       70000, 8000, 0.22, 0.14, 0.015, 2.4),
    _p("panel7_mipi", 60, 30, 5000, 14000, 8000, 2.5, 10, 2.2, (1.0, 1.0, 0.95), 0.05, None,
       30000, 3000, 0.155, 0.087, 0.01, 3.0),
    _p("ledbar_usb", 66, 30, 4000, 20000, 6000, 3.0, 16, 2.2, (1.1, 1.0, 1.0), 0.03, 85,
       25000, 1000, 0.25, 0.06, 0.01, 5.0),
    _p("kiosk13_usb", 70, 30, 8000, 24000, 5500, 4.0, 16, 2.4, (1.0, 1.0, 1.1), 0.07, 80,
       60000, 7000, 0.29, 0.165, 0.02, 2.1),
    _p("panel8_mipi", 64, 30, 7000, 15000, 7000, 2.5, 12, 2.0, (1.05, 1.0, 1.0), 0.05, None,
       35000, 4000, 0.17, 0.107, 0.012, 2.8),
    _p("kiosk21_usb", 74, 30, 9000, 26000, 6500, 3.0, 16, 2.2, (0.97, 1.0, 1.08), 0.06, 90,
       80000, 9000, 0.47, 0.26, 0.03, 1.6),
    _p("ledring_mipi", 60, 30, 5000, 13000, 8500, 2.0, 10, 2.2, (1.0, 1.0, 1.0), 0.02, None,
       20000, 1000, 0.2, 0.2, 0.0, 3.5),
)

PROFILE_BY_NAME = {p.name: p for p in PROFILES}

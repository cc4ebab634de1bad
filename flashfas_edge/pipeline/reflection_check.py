"""Step 5, challenge verification: the face must reflect *this* check's flash sequence, in time.

Model (ATR-FAS §3.2, Lambertian): in linear light the face region's mean in play slot k and
channel c is m[k, c] = a_c + b_c · e[k, c], where e = intensity · colour is what was commanded,
a_c the ambient term and b_c ≥ 0 the face's (unknown) gain per channel. The fit quality
r = sqrt(1 − SS_res / SS_tot) over all slots and channels is 1 for a perfect match and near 0
for a sequence unrelated to the challenge. A recording of an earlier check or an injected stream
reflects a different random order (r drops); a stream delayed or advanced by whole flash states
matches a *shifted* challenge better than the true one, so r is compared with the best cyclic
shift of the excitation as well (the timing test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReflectionFit:
    corr: float  # r of the commanded sequence at the reported timing, in [0, 1]
    best_shifted_corr: float  # best r over cyclic shifts by 1..N0−1 flash states
    best_shift: int
    gain: tuple[float, ...]  # b_c per channel (linear light, 0..1 scale), NaN: channel unlit
    channels_used: int

    @property
    def margin(self) -> float:
        return self.corr - self.best_shifted_corr


def linearise(levels_dl: np.ndarray, gamma: float) -> np.ndarray:
    """8-bit camera levels → linear light in [0, 1] under a power-law transfer function."""
    return np.power(np.clip(np.asarray(levels_dl, np.float64) / 255.0, 0.0, 1.0), gamma)


def _fit_r(m: np.ndarray, e: np.ndarray) -> tuple[float, list[float], int]:
    ss_res = 0.0
    ss_tot = 0.0
    gains: list[float] = []
    used = 0
    for c in range(m.shape[1]):
        ec = e[:, c] - e[:, c].mean()
        mc = m[:, c] - m[:, c].mean()
        var_e = float(ec @ ec)
        if var_e <= 1e-12:  # channel not excited by this challenge: it carries no evidence
            gains.append(float("nan"))
            continue
        b = max(float(mc @ ec) / var_e, 0.0)  # a reflection cannot darken with more flash
        gains.append(b)
        ss_res += float(((mc - b * ec) ** 2).sum())
        ss_tot += float((mc**2).sum())
        used += 1
    if used == 0 or ss_tot <= 0.0:
        return 0.0, gains, used
    return float(np.sqrt(max(0.0, 1.0 - ss_res / ss_tot))), gains, used


def fit_reflection(
    state_means_dl: np.ndarray, excitation: np.ndarray, gamma: float = 2.2
) -> ReflectionFit:
    """``state_means_dl`` float [N0, 3]: face-region mean per play slot (camera levels);
    ``excitation`` float [N0, 3]: commanded intensity × colour per play slot."""
    m = linearise(state_means_dl, gamma)
    e = np.asarray(excitation, np.float64)
    if m.shape != e.shape or m.ndim != 2 or m.shape[0] < 3:
        raise ValueError(f"state means {m.shape} and excitation {e.shape} must both be [N0>=3, C]")
    corr, gains, used = _fit_r(m, e)
    best_shifted, best_shift = 0.0, 0
    for shift in range(1, m.shape[0]):
        r, _, _ = _fit_r(m, np.roll(e, shift, axis=0))
        if r > best_shifted:
            best_shifted, best_shift = r, shift
    return ReflectionFit(
        corr=corr,
        best_shifted_corr=best_shifted,
        best_shift=best_shift,
        gain=tuple(gains),
        channels_used=used,
    )

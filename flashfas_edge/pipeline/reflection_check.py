"""Step 5, challenge verification: the face must reflect *this* check's flash sequence, in time.

Model (ATR-FAS §3.2, Lambertian): in linear light the face region's mean in play slot k and
channel c is m[k, c] = a_c + b_c · e[k, c], where e = intensity · colour is what was commanded,
a_c the ambient term and b_c ≥ 0 the face's (unknown) gain per channel. The fit quality
r = sqrt(1 − SS_res / SS_tot) over all slots and channels is 1 for a perfect match and near 0
for a sequence unrelated to the challenge.

The same fit is made for every *other* order of the commanded states (all N0! permutations of
the play slots). A recording of an earlier check, or an injected stream, reflects another random
order; a stream delayed or advanced by whole states reflects a cyclic shift. Either way some other
order explains the observations better than the challenge does. The test is therefore relative:
the best other order must leave clearly more unexplained variance than the challenge,
residual_ratio = (1 − r_other²) / (1 − r²) — an F-like ratio of residual sums of squares that
does not depend on how bright the flash is, and stays large for a true match even when two states
are alike (a dim colour next to black) or the response is noisy. A fixed floor on r alone would
either let near-orders through or, at low flash SNR, call a live face a spoof. An old recording
passes only when its order happens to equal the new challenge: 1 / N0! (1/120 for N0 = 5).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from flashfas_edge.flash_levels import N0_MAX, N0_MIN


@dataclass(frozen=True)
class ReflectionFit:
    corr: float  # r of the commanded sequence at the reported timing, in [0, 1]
    best_other_corr: float  # best r over every other order of the commanded states
    best_other_order: tuple[int, ...]  # that order: slot k would have shown state order[k]
    gain: tuple[float, ...]  # b_c per channel (linear light, 0..1 scale), NaN: channel unlit
    channels_used: int

    @property
    def margin(self) -> float:
        return self.corr - self.best_other_corr

    @property
    def residual_ratio(self) -> float:
        """Unexplained variance of the best other order over that of the challenge (≥ 0)."""
        unexplained = max(1.0 - self.corr**2, 1e-12)
        return (1.0 - self.best_other_corr**2) / unexplained


def linearise(levels_dl: np.ndarray, gamma: float) -> np.ndarray:
    """8-bit camera levels → linear light in [0, 1] under a power-law transfer function."""
    return np.power(np.clip(np.asarray(levels_dl, np.float64) / 255.0, 0.0, 1.0), gamma)


@functools.lru_cache(maxsize=8)
def _orders(n0: int) -> np.ndarray:
    """int64 [n0!, n0]: every order of n0 slots, identity first (40 320 rows at n0 = 8)."""
    return np.array(list(itertools.permutations(range(n0))), dtype=np.int64)


def _fit_r(m: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r for a batch of hypotheses. m [N0, C] observed; e [P, N0, C] commanded per hypothesis.

    Returns r [P], gains b [P, C] (NaN where a channel is not excited) and channels used [P].
    """
    mc = m - m.mean(axis=0)  # [N0, C]
    ec = e - e.mean(axis=1, keepdims=True)  # [P, N0, C]
    var_e = (ec**2).sum(axis=1)  # [P, C]
    excited = var_e > 1e-12  # a channel the challenge does not excite carries no evidence
    cov = np.einsum("kc,pkc->pc", mc, ec)
    # A reflection cannot darken with more flash: negative gains are clipped to 0.
    b = np.where(excited, np.maximum(cov / np.where(excited, var_e, 1.0), 0.0), 0.0)
    ss_res = (((mc[None] - b[:, None, :] * ec) ** 2).sum(axis=1) * excited).sum(axis=1)
    ss_tot = ((mc**2).sum(axis=0)[None, :] * excited).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sqrt(np.clip(1.0 - ss_res / ss_tot, 0.0, 1.0))
    r = np.where(ss_tot > 0.0, r, 0.0)
    return r, np.where(excited, b, np.nan), excited.sum(axis=1)


def fit_reflection(
    state_means_dl: np.ndarray, excitation: np.ndarray, gamma: float = 2.2
) -> ReflectionFit:
    """``state_means_dl`` float [N0, 3]: face-region mean per play slot (camera levels);
    ``excitation`` float [N0, 3]: commanded intensity × colour per play slot."""
    m = linearise(state_means_dl, gamma)
    e = np.asarray(excitation, np.float64)
    if m.shape != e.shape or m.ndim != 2 or not N0_MIN <= m.shape[0] <= N0_MAX:
        raise ValueError(f"state means {m.shape} and excitation {e.shape} must both be "
                         f"[{N0_MIN}..{N0_MAX}, C]")
    orders = _orders(m.shape[0])
    r, gains, used = _fit_r(m, e[orders])
    # Other orders that command the very same sequence (repeated states) are not alternatives.
    same = np.all(np.isclose(e[orders], e[None]), axis=(1, 2))
    others = np.where(same, -1.0, r)
    best = int(np.argmax(others))
    best_other = max(float(others[best]), 0.0)
    return ReflectionFit(
        corr=float(r[0]),
        best_other_corr=best_other,
        best_other_order=tuple(int(i) for i in orders[best]),
        gain=tuple(float(g) for g in gains[0]),
        channels_used=int(used[0]),
    )

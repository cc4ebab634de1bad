"""How far a colour challenge can tell skin from a skin-coloured paint (docs/RESULTS.md, masks).

Under the ``hue_levels`` challenge every pixel answers each display primary separately, so a check
measures a 3 × 3 response (camera channel × primary) instead of one RGB colour. Divided by its
sum, the response no longer depends on shading, distance or flash brightness: what is left is the
surface's spectrum as this camera sees it under these primaries. This script measures how much
of a difference that leaves between a person's skin and the paint an attacker mixed to match it
(sim/mask_attack.py: pigments mixed by eye under a workshop light), in two ways:

1. **Physics alone** (``--people``): for every kiosk build of the simulator (its primaries and
   camera channels) and fresh identities, the normalised response of the skin and of its matched
   paint, exactly as the spectral renderer computes them, with no noise, no geometry and no
   camera. Reported: the mean and spread of the skin − paint difference per entry, the spread of
   the entry among people's skin, and the Fisher discriminability d' of the best linear
   combination of the nine entries (skin against paint, per build) with the error rate at equal
   errors it implies for Gaussian classes, Φ(−d'/2). This is the most any model could get from
   the colour cue with a perfect sensor that knows its build.
2. **As a check measures it** (``--data``, a spectral hue-levels test split): the same nine
   entries estimated from each session's aligned state frames (gamma-linearised, the darkest
   state subtracted, least squares over the four lit states), median over the central face, then
   d' for live against mask with the Fisher direction fitted on one half of the sessions and
   applied to the other, both ways.

    .venv/bin/python scripts/measure_spectral_cue.py --people 200
    .venv/bin/python scripts/measure_spectral_cue.py --people 200 --ablate paint_is_skin
    .venv/bin/python scripts/measure_spectral_cue.py --people 200 --data data/spec-A-test/test
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from flashfas_edge.data import iter_sessions
from flashfas_edge.flash_levels import DEFAULT_LEVELS, level_colours
from flashfas_edge.pipeline.session_check import SessionInvalid, validate_session
from flashfas_edge.sim.device import PROFILES
from flashfas_edge.sim.head import HeadIdentity
from flashfas_edge.sim.mask_attack import ABLATIONS, draw_mask
from flashfas_edge.sim.spectral_render import device_spectra, skin_material
from flashfas_edge.train.sample import SampleError, align_session

ALIGNED = 64
HUE_FAMILY = "hue_levels"
CAMERA_GAMMA = 2.2


def normalised_response(reflectance: np.ndarray, primary_channel: np.ndarray) -> np.ndarray:
    """[9]: the 3 primaries × 3 channels response of a reflectance, divided by its sum."""
    m = np.einsum("l,plc->pc", reflectance, primary_channel)
    return (m / m.sum()).ravel()


def fisher_dprime(a: np.ndarray, b: np.ndarray, fit: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> float:
    """d' of classes ``a`` and ``b`` [n, k] along the Fisher direction of ``fit`` (default: of
    ``a`` and ``b`` themselves)."""
    fa, fb = fit if fit is not None else (a, b)
    pooled = np.cov(fa.T) + np.cov(fb.T)
    pooled += 1e-9 * np.trace(pooled) / len(pooled) * np.eye(len(pooled))
    w = np.linalg.solve(pooled, fa.mean(axis=0) - fb.mean(axis=0))
    pa, pb = a @ w, b @ w
    return float(abs(pa.mean() - pb.mean()) / math.sqrt(0.5 * (pa.var() + pb.var()) + 1e-30))


def cross_validated_dprime(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """d' with the Fisher direction fitted on one random half of each class and measured on the
    other, both ways, averaged (in-sample d' grows with the number of entries alone)."""
    halves = []
    for cls in (a, b):
        order = rng.permutation(len(cls))
        halves.append((cls[order[: len(cls) // 2]], cls[order[len(cls) // 2:]]))
    (a1, a2), (b1, b2) = halves
    return 0.5 * (fisher_dprime(a2, b2, fit=(a1, b1)) + fisher_dprime(a1, b1, fit=(a2, b2)))


def equal_error_of(dprime: float) -> float:
    return 0.5 * math.erfc(dprime / 2 / math.sqrt(2))


def physics(people: int, seed: int, ablations: tuple[str, ...] = ()) -> dict:
    builds = {}
    for profile in PROFILES:
        device = device_spectra(profile)
        rng = np.random.default_rng(seed)
        skins, paints = [], []
        for _ in range(people):
            victim = HeadIdentity.draw(rng)
            skin = skin_material(victim.skin_rgb, device).reflectance
            _look, paint, _params = draw_mask(rng, victim, device, ablations=ablations)
            skins.append(normalised_response(skin, device.primary_channel))
            paints.append(normalised_response(paint.reflectance, device.primary_channel))
        s, p = np.array(skins), np.array(paints)
        d = cross_validated_dprime(s, p, np.random.default_rng(seed + 1))
        builds[profile.name] = {
            "skin_mean": np.round(s.mean(axis=0), 4).tolist(),
            "skin_minus_paint_mean": np.round((s - p).mean(axis=0), 4).tolist(),
            "skin_minus_paint_sd": np.round((s - p).std(axis=0), 4).tolist(),
            "skin_sd_among_people": np.round(s.std(axis=0), 4).tolist(),
            "largest_entry_shift_in_skin_sds": round(float(
                np.max(np.abs((s - p).mean(axis=0)) / (s.std(axis=0) + 1e-12))), 2),
            "fisher_dprime": round(d, 2),
            "equal_error_rate": round(equal_error_of(d), 4),
        }
    return builds


def lit_state_pinv() -> np.ndarray:
    """[3, 4]: least squares from the four lit states' differences to the three primaries."""
    colours = level_colours(HUE_FAMILY, DEFAULT_LEVELS)
    drive = np.array([level * np.array(colour)
                      for level, colour in zip(DEFAULT_LEVELS, colours, strict=True)])
    return np.linalg.pinv(drive[:4])


def measured(folder: Path, seed: int) -> dict:
    pinv = lit_state_pinv()
    yy, xx = np.mgrid[0:ALIGNED, 0:ALIGNED]
    face = (((xx - 32) / 20.0) ** 2 + ((yy - 34) / 24.0) ** 2) < 1.0  # cheeks, nose, forehead
    rows: dict[str, list[np.ndarray]] = {"live": [], "mask": []}
    skipped = 0
    for session in iter_sessions(folder):
        if session.attack_type not in rows:
            continue
        try:  # the daemon's own check that a recording carries the hue ladder
            validate_session(session, len(DEFAULT_LEVELS), HUE_FAMILY)
        except SessionInvalid as exc:
            raise SystemExit(f"{folder}: {exc} (render it with --challenge hue_levels)") from exc
        try:
            aligned = align_session(session, ALIGNED).aligned  # brightest first
        except SampleError:
            skipped += 1
            continue
        linear = (aligned.astype(np.float64) / 255.0) ** CAMERA_GAMMA
        lit = linear[:4] - linear[4:5]  # [4, S, S, 3]
        m = np.einsum("pk,khwc->hwcp", pinv, lit)[face]  # [P, channel, primary]
        total = m.sum(axis=(1, 2))
        keep = total > 1e-4
        if keep.sum() < 50:
            skipped += 1
            continue
        per_pixel = (m[keep] / total[keep][:, None, None]).transpose(0, 2, 1).reshape(-1, 9)
        rows[str(session.attack_type)].append(np.median(per_pixel, axis=0))
    live, mask = np.array(rows["live"]), np.array(rows["mask"])
    d = cross_validated_dprime(live, mask, np.random.default_rng(seed))
    return {
        "sessions": {"live": len(live), "mask": len(mask), "skipped": skipped},
        "live_mean": np.round(live.mean(axis=0), 4).tolist(),
        "live_minus_mask_mean": np.round(live.mean(axis=0) - mask.mean(axis=0), 4).tolist(),
        "live_sd": np.round(live.std(axis=0), 4).tolist(),
        "fisher_dprime_cross_validated": round(d, 2),
        "equal_error_rate": round(equal_error_of(d), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200, help="identities per kiosk build")
    parser.add_argument("--data", type=Path, help="a spectral hue-levels split to measure on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablate", choices=ABLATIONS, action="append", default=[],
                        help="physics part: the renderer's ablation (paint_is_skin: the paint "
                        "gets the victim's own skin spectrum, so the cue must vanish)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    report: dict = {"entries": "primary (R, G, B) × camera channel (R, G, B), row-major",
                    "ablations": args.ablate,
                    "physics": physics(args.people, args.seed, tuple(args.ablate))}
    print(f"physics alone, {args.people} people per kiosk build (normalised 3 × 3 response"
          f"{', ablated: ' + ', '.join(args.ablate) if args.ablate else ''}):")
    print(f"{'build':18}{'d_prime':>9}{'EER':>8}{'largest shift / skin sd':>26}")
    for name, row in report["physics"].items():
        print(f"{name:18}{row['fisher_dprime']:9.2f}{100 * row['equal_error_rate']:7.1f}%"
              f"{row['largest_entry_shift_in_skin_sds']:26.2f}")
    if args.data is not None:
        report["measured"] = measured(args.data, args.seed)
        m = report["measured"]
        print(f"as a check measures it ({args.data}, {m['sessions']}): cross-validated d' "
              f"{m['fisher_dprime_cross_validated']:.2f}, EER {100 * m['equal_error_rate']:.1f} %")
        print(f"  live − mask, per entry: {m['live_minus_mask_mean']}")
        print(f"  live sd, per entry:     {m['live_sd']}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

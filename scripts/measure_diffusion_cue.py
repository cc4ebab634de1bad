"""How far light diffusing under skin can tell skin from a mask under the flash (docs/RESULTS.md,
masks).

Light enters skin, scatters in the dermis and leaves a few millimetres away; red travels further
than blue before it is absorbed, so skin's red flash image is a softer copy of its blue one
(sim/spectra.py ``skin_optics``: the diffusion length per wavelength from melanin, blood and the
dermis' scattering). Resin and plaster are opaque; silicone is translucent and diffuses too
(``pigment_diffusion_mm``). This is the one difference between skin and a mask that does not
depend on how well the attacker matched its colour and gloss. This script measures how large it
is and how much of it a camera sees:

1. **Physics alone** (``--people``): for each kiosk build of the simulator and fresh identities,
   the diffusion length each camera channel sees under the full-white flash (the band lengths
   weighted by the surface's reflectance and the channel's response), for skin and for the
   silicone an attacker paints to match it (the same draw as the renderer's silicone masks).
   Reported: medians per channel, the red ÷ blue ratio, and the share of silicone masks whose
   ratio lies inside skin's 5–95 % range.
2. **What a camera measures** (``--render N``): N live and mask sessions of the test protocol
   (spectral physics, scanned faces, the white-levels flash), each rendered twice, once as it is
   and once with no light diffusing under skin (the renderer's ``skin_without_diffusion``
   ablation, every other draw the same). For each, the **detail energy** of every channel of the
   flash image at native resolution: the image the flash adds (two independent estimates from
   disjoint frame pairs, each frame warped onto the ambient-only frame's face by its landmarks),
   high-passed at a scale in millimetres of face (the interocular distance is 63 mm), and the
   product of the two estimates' high-pass over the face region (so that the sensor's noise,
   independent between the estimates, does not add energy) divided by the low-pass energy.
   Reported per scenario: how much diffusion lowers each channel's detail energy (paired, the
   same session with and without), and how well one check tells them apart (unpaired d' of the
   log red ÷ blue detail ratio: skin as it is against skin without diffusion, and against each
   mask material).
3. **On a stored split** (``--data``, a spectral white-levels split): the same detail ratios of
   its live and mask sessions.

    .venv/bin/python scripts/measure_diffusion_cue.py --people 200
    .venv/bin/python scripts/measure_diffusion_cue.py --people 200 --render 240
    .venv/bin/python scripts/measure_diffusion_cue.py --people 40 --data data/specW-A-test/test
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from flashfas_edge import _core
from flashfas_edge.data import Session, iter_sessions
from flashfas_edge.pipeline.colour_response import face_region_mask, linear_lut
from flashfas_edge.pipeline.face_region import interocular_px
from flashfas_edge.sim.device import PROFILE_BY_NAME, PROFILES
from flashfas_edge.sim.head import HeadIdentity
from flashfas_edge.sim.mask_attack import draw_mask
from flashfas_edge.sim.protocol import draw_request
from flashfas_edge.sim.scene import build_scene
from flashfas_edge.sim.spectral_render import device_spectra, skin_material
from flashfas_edge.sim.synth_dataset import first_rendered
from flashfas_edge.sim.synth_session import SessionOptions, render_session

SCALES_MM = (1.5, 3.0)  # high-pass scales: skin's blue and red diffusion lengths lie about here
IOD_MM = 63.0
ABLATION = "skin_without_diffusion"
SCENARIOS = ("bedroom", "shadow", "sunlight")
MATERIALS = ("resin", "plaster", "silicone")


def channel_diffusion_mm(reflectance: np.ndarray, diffusion_mm: np.ndarray,
                         primary_channel: np.ndarray) -> np.ndarray:
    """[3]: the diffusion length each camera channel sees under the full-white flash, the band
    lengths weighted by how much light of each band the channel receives from this surface."""
    weight = reflectance[:, None] * primary_channel.sum(axis=0)  # [bands, channels]
    return (diffusion_mm[:, None] * weight).sum(axis=0) / np.maximum(weight.sum(axis=0), 1e-12)


def physics(people: int, seed: int) -> dict:
    """Per kiosk build: skin's and silicone's diffusion length per channel."""
    report = {}
    for profile in PROFILES:
        device = device_spectra(profile)
        pc = device.primary_channel
        rng = np.random.default_rng(seed)
        skin, silicone = [], []
        for _ in range(people):
            victim = HeadIdentity.draw(rng)
            mat = skin_material(victim.skin_rgb, device)
            skin.append(channel_diffusion_mm(mat.reflectance, mat.diffusion_mm, pc))
            _look, paint, _params = draw_mask(rng, victim, device, materials=("silicone",))
            silicone.append(channel_diffusion_mm(paint.reflectance, paint.diffusion_mm, pc))
        s, m = np.array(skin), np.array(silicone)
        rs, rm = s[:, 0] / s[:, 2], m[:, 0] / m[:, 2]
        lo, hi = np.percentile(rs, [5, 95])
        report[profile.name] = {
            "skin_mm_rgb_median": np.round(np.median(s, axis=0), 3).tolist(),
            "silicone_mm_rgb_median": np.round(np.median(m, axis=0), 3).tolist(),
            "skin_red_over_blue_median": round(float(np.median(rs)), 2),
            "skin_red_over_blue_5_95": [round(float(lo), 2), round(float(hi), 2)],
            "silicone_red_over_blue_median": round(float(np.median(rm)), 2),
            "silicone_inside_skin_range": round(float(np.mean((rm >= lo) & (rm <= hi))), 3),
        }
    return report


def detail_energy(session: Session) -> dict[float, np.ndarray] | None:
    """Per high-pass scale (mm), float [3]: each channel's detail energy of the flash image over
    the face region, relative to its low-pass energy; None when the session cannot give one (not
    the five-level white ladder, no face, too few pixels)."""
    drives = np.asarray(session.flash_intensity, np.float64)
    rgb = np.asarray(session.flash_rgb, np.float64)
    if len(drives) != 5 or not np.allclose(rgb, 1.0) or session.landmarks is None:
        return None
    order = np.argsort(drives)
    if not np.allclose(drives[order], [0.0, 0.25, 0.5, 0.75, 1.0]):
        return None
    marks = np.asarray(session.landmarks, np.float64)
    if not np.all(np.isfinite(marks)):
        return None
    dark = int(order[0])
    region = face_region_mask(session.frames[0].shape[:2], marks[dark])
    ys, xs = np.nonzero(region)
    if len(ys) < 400:
        return None
    mm_px = interocular_px(marks[dark]) / IOD_MM
    pad = int(math.ceil(3 * max(SCALES_MM) * mm_px))
    h, w = region.shape
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, h)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, w)
    lut = linear_lut(float(PROFILE_BY_NAME[str(session.meta["device"])].gamma)).astype(np.float32)
    linear = []
    for k in order:  # drives 0, 0.25, 0.5, 0.75, 1
        to_dark = (np.eye(2, 3) if k == dark
                   else _core.estimate_similarity(marks[k], marks[dark])).copy()
        to_dark[:, 2] -= (x0, y0)
        linear.append(cv2.warpAffine(lut[session.frames[k]], to_dark, (x1 - x0, y1 - y0),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    first = linear[4] - linear[0]  # two estimates of the flash image from disjoint frames
    second = (linear[3] - linear[1]) / 0.5
    # the region, kept clear of its border by the largest scale's reach
    inner = cv2.erode(region[y0:y1, x0:x1].astype(np.uint8),
                      np.ones((2 * int(max(SCALES_MM) * mm_px) + 1,) * 2, np.uint8)) > 0
    if inner.sum() < 200:
        return None
    out = {}
    for scale in SCALES_MM:
        energy = np.zeros(3)
        for c in range(3):
            low1 = cv2.GaussianBlur(first[..., c], (0, 0), scale * mm_px)
            low2 = cv2.GaussianBlur(second[..., c], (0, 0), scale * mm_px)
            cross = ((first[..., c] - low1) * (second[..., c] - low2))[inner].mean()
            energy[c] = cross / max(float((low1[inner] * low2[inner]).mean()), 1e-12)
        out[scale] = energy
    return out


def log_ratio(energy: np.ndarray, a: int = 0, b: int = 2) -> float | None:
    """log(channel a's ÷ channel b's detail energy); None where noise left either at or below
    zero (the cross-product estimate can be negative when there is no detail above the noise)."""
    if energy[a] <= 0 or energy[b] <= 0:
        return None
    return float(math.log(energy[a] / energy[b]))


def robust_dprime(a: list[float], b: list[float]) -> float:
    """d' from medians and 1.4826 × median absolute deviations (a few noise-dominated checks do
    not decide it)."""
    def centre_spread(x: list[float]) -> tuple[float, float]:
        v = np.asarray(x, np.float64)
        med = float(np.median(v))
        return med, float(1.4826 * np.median(np.abs(v - med)))
    (ma, sa), (mb, sb) = centre_spread(a), centre_spread(b)
    return (ma - mb) / max(math.sqrt(0.5 * (sa * sa + sb * sb)), 1e-12)


def _row(session: Session) -> dict | None:
    energy = detail_energy(session)
    if energy is None:
        return None
    mask = session.meta.get("mask")
    return {"type": str(session.attack_type), "scenario": str(session.meta.get("scenario")),
            "material": str(mask["material"]) if isinstance(mask, dict) else None,
            "energy": {str(s): e.tolist() for s, e in energy.items()}}


def _rendered(args: tuple[int, int]) -> dict | None:
    """One live or mask test session, as it is and without diffusion under skin."""
    seed, index = args
    req = draw_request(seed, index, "test")
    if req.attack_type not in ("live", "mask"):
        return None
    req = replace(req, physics="spectral", face_shape="scanned")
    rows = []
    for ablations in ((), (ABLATION,)):
        variant = replace(req, ablations=ablations)
        rows.append(_row(render_session(variant, SessionOptions(), build_scene(variant))))
    if rows[0] is None or rows[1] is None:
        return None
    return {"index": index, **rows[0], "without_diffusion": rows[1]["energy"]}


def summarise(rows: list[dict], scale: float) -> dict:
    """Per scenario: the paired change of each channel's detail energy (where the rows carry
    ``without_diffusion``) and the d' of the log red ÷ blue detail ratio."""
    key = str(scale)
    report: dict = {}
    for scenario in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == scenario]
        live = [r for r in mine if r["type"] == "live"]
        if not live:
            continue
        entry: dict = {"live": len(live)}
        as_is = [v for r in live if (v := log_ratio(np.array(r["energy"][key]))) is not None]
        entry["live_red_over_blue_log_median"] = round(float(np.median(as_is)), 3)
        entry["live_noise_dominated"] = len(live) - len(as_is)
        paired = [r for r in live if "without_diffusion" in r]
        if paired:
            change = np.array([np.array(r["energy"][key]) / np.array(r["without_diffusion"][key])
                               for r in paired
                               if min(r["energy"][key] + r["without_diffusion"][key]) > 0])
            if len(change):
                entry["with_over_without_rgb_median"] = np.round(
                    np.median(change, axis=0), 3).tolist()
                entry["share_lower_with_rgb"] = np.round((change < 1).mean(axis=0), 2).tolist()
            without = [v for r in paired
                       if (v := log_ratio(np.array(r["without_diffusion"][key]))) is not None]
            if len(as_is) > 2 and len(without) > 2:
                entry["dprime_live_vs_without_diffusion"] = round(robust_dprime(as_is, without),
                                                                  2)
        for material in MATERIALS:
            masks = [v for r in mine if r["type"] == "mask" and r["material"] == material
                     if (v := log_ratio(np.array(r["energy"][key]))) is not None]
            if len(masks) > 2 and len(as_is) > 2:
                entry[f"dprime_live_vs_{material}"] = round(robust_dprime(as_is, masks), 2)
                entry[f"{material}_masks"] = len(masks)
        report[scenario] = entry
    return report


def stored(folder: Path) -> list[dict]:
    rows = []
    for session in iter_sessions(folder):
        if session.attack_type in ("live", "mask") and (row := _row(session)) is not None:
            rows.append(row)
    if not rows:
        raise SystemExit(f"{folder}: no live or mask session with the five-level white ladder")
    return rows


def _print_summary(title: str, summary: dict) -> None:
    print(title)
    for scenario, entry in summary.items():
        parts = [f"  {scenario:9} live {entry['live']:3d}"]
        if "with_over_without_rgb_median" in entry:
            r, g, b = entry["with_over_without_rgb_median"]
            parts.append(f"detail with ÷ without diffusion R {r:.2f} G {g:.2f} B {b:.2f}")
            if "dprime_live_vs_without_diffusion" in entry:
                parts.append("d' skin vs no diffusion "
                             f"{entry['dprime_live_vs_without_diffusion']:+.2f}")
        for material in MATERIALS:
            if f"dprime_live_vs_{material}" in entry:
                parts.append(f"d' vs {material} {entry[f'dprime_live_vs_{material}']:+.2f}"
                             f" ({entry[f'{material}_masks']})")
        print(";  ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200, help="identities per kiosk build")
    parser.add_argument("--render", type=int, default=0,
                        help="live and mask test sessions to render twice and measure (0: none)")
    parser.add_argument("--data", type=Path, help="a spectral white-levels split to measure on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for --render")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    report: dict = {"physics": physics(args.people, args.seed)}
    print(f"physics alone, {args.people} people per kiosk build: diffusion length (mm) each "
          "camera channel sees under the white flash, medians (docs/RESULTS.md: 200 people; "
          "fewer give noisier medians)")
    print(f"{'build':16}{'skin R, G, B':>22}{'silicone R, G, B':>22}{'skin R/B':>10}"
          f"{'(5-95 %)':>13}{'silicone R/B':>14}{'inside skin':>13}")
    for name, row in report["physics"].items():
        skin = ", ".join(f"{v:.2f}" for v in row["skin_mm_rgb_median"])
        sil = ", ".join(f"{v:.2f}" for v in row["silicone_mm_rgb_median"])
        lo, hi = row["skin_red_over_blue_5_95"]
        print(f"{name:16}{skin:>22}{sil:>22}{row['skin_red_over_blue_median']:10.2f}"
              f"{f'{lo:.2f}-{hi:.2f}':>13}{row['silicone_red_over_blue_median']:14.2f}"
              f"{100 * row['silicone_inside_skin_range']:12.0f}%")
    rendered = (first_rendered(_rendered, args.seed + 51, args.render, args.workers)
                if args.render else None)
    for source, rows in (("rendered", rendered),
                         ("measured", stored(args.data) if args.data is not None else None)):
        if rows is None:
            continue
        report[source] = {str(s): summarise(rows, s) for s in SCALES_MM}
        report[f"{source}_sessions"] = len(rows)
        for scale in SCALES_MM:
            _print_summary(f"{source} ({len(rows)} live and mask sessions), detail at "
                           f"{scale} mm: log red ÷ blue detail ratio", report[source][str(scale)])
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

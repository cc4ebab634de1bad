"""The calibration report: a terminal summary and an HTML page with plots, next to the file."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from flashfas_edge.calibrate.session import Outcome
from flashfas_edge.calibrate.svg_plot import Chart, histogram

_COLOURS = {"pass": "#2e7d32", "warn": "#b26a00", "fail": "#c62828"}


def report_path(calibration_path: Path) -> Path:
    return calibration_path.with_name(calibration_path.stem + "-report.html")


def terminal_summary(outcome: Outcome, written: Path | None) -> str:
    cal = outcome.calibration
    site = cal.site
    assert site is not None
    lat = outcome.latency
    lines = [
        f"site verdict: {site.verdict.upper()}",
        *(f"  {line}" for line in site.findings),
        "",
        f"latency      {lat.median_us / 1000:.1f} ms (IQR {lat.spread_ms:.1f} ms, "
        f"{len(lat.edges)} edges of {lat.toggles} toggles)",
        f"exposure     {cal.exposure_us} µs, gain {cal.analog_gain:.2f}, white balance "
        f"{', '.join(f'{g:.3f}' for g in cal.white_balance_gains or ())}",
        f"flash SNR    {outcome.colour.flash_snr:.1f}",
    ]
    t = outcome.threshold
    if t is not None:
        raised = ", raised to the bundle" if t.raised_to_bundle else ""
        lines.append(f"threshold    {t.threshold:.3f} for BPCER {t.target_bpcer:.0%} from "
                     f"{len(t.scores)} live checks (fitted {t.fitted:.3f}, bundle "
                     f"{t.bundle_threshold:.3f}{raised})")
    else:
        lines.append(f"threshold    the bundle's {cal.bundle_threshold:.3f} (no live checks)")
    if written is not None:
        lines += ["", f"wrote {written}", f"report {report_path(written)}"]
    return "\n".join(lines)


def _latency_svg(outcome: Outcome) -> str:
    lat = outcome.latency
    return histogram(list(lat.samples_ms), "Flash-to-camera latency, per edge", "latency (ms)",
                     marker=lat.median_us / 1000, marker_label=f"median {lat.median_us / 1000:.1f}")


def _colour_svg(outcome: Outcome) -> str:
    """Face response (linear, per channel) against flash intensity; the primaries as points."""
    levels = outcome.colour.levels
    dark = np.array(levels[0].stats.mean_rgb_linear)
    xs = [m.state.intensity for m in levels]
    resp = np.array([np.array(m.stats.mean_rgb_linear) - dark for m in levels])
    top = float(max(resp.max(), 1e-6)) * 1.2
    chart = Chart("Colour response on the face", "flash intensity (white)",
                  "response (linear, over dark)", (0.0, 1.0), (0.0, top))
    for c, colour in enumerate(("#d62728", "#2ca02c", "#1f77b4")):
        chart.line(xs, list(resp[:, c]), colour)
        for x, y in zip(xs, resp[:, c], strict=True):
            chart.point(x, float(y), colour, 3.5)
    matrix = outcome.colour.response.mixing_matrix
    if matrix is not None:
        chart.label(0.03, top * 0.93, "mixing matrix M (rows: camera R,G,B; columns: flash "
                    "R,G,B)")
        for r, row in enumerate(matrix):
            chart.label(0.05, top * (0.85 - 0.07 * r), "  ".join(f"{v:.4f}" for v in row))
    else:
        chart.label(0.03, top * 0.93, "white-only surface: no mixing matrix")
    return chart.svg()


def _distance_svg(outcome: Outcome, min_snr: float, warn_snr: float) -> str:
    model = outcome.distance
    ds = np.linspace(0.15, 1.5, 60)
    snr = model.snr_at(ds)
    # the range that decides (the limits and the face's own SNR), not the near-field peak
    top = float(min(max(model.snr_at_face * 2.5, warn_snr * 4), snr.max(), 200.0))
    top = max(top, warn_snr * 2)
    chart = Chart("Flash SNR against distance", "distance (m)", "flash SNR", (0.15, 1.5),
                  (0.0, top))
    usable = outcome.calibration.site.distance_range_m if outcome.calibration.site else None
    if usable is not None:
        chart.band(max(usable[0], 0.15), min(usable[1], 1.5))
        chart.label(max(usable[0], 0.15), top * 0.95, " usable", "#2e7d32")
    chart.line(list(ds), list(np.minimum(snr, top)), "#4c78a8")
    chart.line([0.15, 1.5], [warn_snr, warn_snr], "#b26a00", "6 3", 1.5)
    chart.label(1.48, warn_snr + top * 0.02, f"warn below {warn_snr:g}", "#b26a00", "end")
    chart.line([0.15, 1.5], [min_snr, min_snr], "#c62828", "6 3", 1.5)
    chart.label(1.48, min_snr - top * 0.06, f"fail below {min_snr:g}", "#c62828", "end")
    chart.point(model.face_distance_m, min(model.snr_at_face, top))
    chart.label(model.face_distance_m, min(model.snr_at_face, top) + top * 0.04,
                f" measured {model.snr_at_face:.1f} at {model.face_distance_m:.2f} m", "#e45756")
    return chart.svg()


def html_report(outcome: Outcome, min_snr: float, warn_snr: float, title: str) -> str:
    cal = outcome.calibration
    site = cal.site
    assert site is not None and cal.identity is not None
    colour = _COLOURS[site.verdict]
    findings = "".join(
        f'<li style="color:{_COLOURS.get(line.split(":", 1)[0], "#333")}">{escape(line)}</li>'
        for line in site.findings)
    t = outcome.threshold
    threshold_row = (
        f"{t.threshold:.3f} (target BPCER {t.target_bpcer:.0%}, {len(t.scores)} live checks; "
        f"fitted {t.fitted:.3f}; bundle {t.bundle_threshold:.3f})" if t is not None
        else f"the bundle's {cal.bundle_threshold:.3f} (no live checks)")
    rows = [
        ("created", cal.created or ""),
        ("camera", cal.identity.camera),
        ("flash surface", cal.identity.flash),
        ("model bundle",
         f"{cal.identity.bundle_name} ({cal.identity.bundle_manifest_sha256[:12]})"),
        ("latency", f"{outcome.latency.median_us / 1000:.1f} ms (IQR "
                    f"{outcome.latency.spread_ms:.1f} ms, {len(outcome.latency.edges)} edges)"),
        ("exposure", f"{cal.exposure_us} µs, gain {cal.analog_gain:.2f}"),
        ("flash SNR", f"{outcome.colour.flash_snr:.1f}"),
        ("mains flicker", "none seen" if outcome.flicker.ripple_hz is None else
         f"{outcome.flicker.mains_hz:g} Hz mains ({outcome.flicker.ripple_hz:g} Hz ripple, "
         f"{100 * outcome.flicker.seen_modulation:.1f} % seen)"),
        ("threshold", threshold_row),
        ("measured in", ", ".join(f"{k} {v:.1f} s" for k, v in outcome.durations_s.items())),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; max-width: 1120px; color: #222; }}
.verdict {{ font-size: 28px; font-weight: bold; color: white; background: {colour};
  padding: 8px 16px; display: inline-block; border-radius: 4px; }}
table {{ border-collapse: collapse; margin: 16px 0; }}
th {{ text-align: left; padding: 4px 16px 4px 0; vertical-align: top; }}
td {{ padding: 4px 0; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 16px; }}
li {{ margin: 4px 0; }}
</style></head><body>
<h1>{escape(title)}</h1>
<div class="verdict">site: {site.verdict.upper()}</div>
<ul>{findings}</ul>
<table>{table}</table>
<div class="plots">
{_latency_svg(outcome)}
{_colour_svg(outcome)}
{_distance_svg(outcome, min_snr, warn_snr)}
</div>
<p>SNR against distance: the flash falls off with the square of the distance, ambient light and
noise do not; the curve is drawn through the SNR measured at the face's distance, bounded by the
face-size gates. docs/CALIBRATE.md explains each measurement.</p>
</body></html>
"""

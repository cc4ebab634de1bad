"""Small inline SVG charts for the calibration report (no plotting library on a kiosk)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

WIDTH, HEIGHT = 520, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 16, 30, 48


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    step = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= raw:
            step = m * step
            break
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    parts: list[str] = field(default_factory=list)

    def x(self, v: float) -> float:
        lo, hi = self.x_range
        return _LEFT + (v - lo) / (hi - lo) * (WIDTH - _LEFT - _RIGHT)

    def y(self, v: float) -> float:
        lo, hi = self.y_range
        return HEIGHT - _BOTTOM - (v - lo) / (hi - lo) * (HEIGHT - _TOP - _BOTTOM)

    def bar(self, x0: float, x1: float, height: float, colour: str = "#4c78a8") -> None:
        y0 = self.y(0.0)
        top = self.y(height)
        self.parts.append(f'<rect x="{self.x(x0):.1f}" y="{top:.1f}" '
                          f'width="{max(self.x(x1) - self.x(x0) - 1, 1):.1f}" '
                          f'height="{max(y0 - top, 0):.1f}" fill="{colour}"/>')

    def line(self, xs: Sequence[float], ys: Sequence[float], colour: str = "#4c78a8",
             dash: str = "", width: float = 2.0) -> None:
        points = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(xs, ys, strict=True))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                          f'stroke-width="{width}"{dashed}/>')

    def point(self, x: float, y: float, colour: str = "#e45756", r: float = 5.0) -> None:
        self.parts.append(f'<circle cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="{r}" '
                          f'fill="{colour}"/>')

    def band(self, x0: float, x1: float, colour: str = "#54a24b", opacity: float = 0.15) -> None:
        self.parts.append(f'<rect x="{self.x(x0):.1f}" y="{_TOP}" '
                          f'width="{self.x(x1) - self.x(x0):.1f}" '
                          f'height="{HEIGHT - _TOP - _BOTTOM}" fill="{colour}" '
                          f'opacity="{opacity}"/>')

    def label(self, x: float, y: float, text: str, colour: str = "#333",
              anchor: str = "start") -> None:
        self.parts.append(f'<text x="{self.x(x):.1f}" y="{self.y(y):.1f}" font-size="12" '
                          f'fill="{colour}" text-anchor="{anchor}">{escape(text)}</text>')

    def svg(self) -> str:
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
               f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" role="img" '
               f'aria-label="{escape(self.title)}">',
               f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
               f'<text x="{WIDTH / 2}" y="18" font-size="14" font-weight="bold" '
               f'text-anchor="middle">{escape(self.title)}</text>']
        x0, x1 = self.x_range
        y0, y1 = self.y_range
        base = HEIGHT - _BOTTOM
        for v in _ticks(x0, x1):
            out.append(f'<line x1="{self.x(v):.1f}" y1="{base}" x2="{self.x(v):.1f}" '
                       f'y2="{base + 5}" stroke="#333"/>')
            out.append(f'<text x="{self.x(v):.1f}" y="{base + 18}" font-size="11" '
                       f'text-anchor="middle">{_fmt(v)}</text>')
        for v in _ticks(y0, y1):
            out.append(f'<line x1="{_LEFT}" y1="{self.y(v):.1f}" x2="{WIDTH - _RIGHT}" '
                       f'y2="{self.y(v):.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{_LEFT - 6}" y="{self.y(v) + 4:.1f}" font-size="11" '
                       f'text-anchor="end">{_fmt(v)}</text>')
        out += self.parts
        out.append(f'<line x1="{_LEFT}" y1="{base}" x2="{WIDTH - _RIGHT}" y2="{base}" '
                   'stroke="#333"/>')
        out.append(f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" stroke="#333"/>')
        out.append(f'<text x="{(WIDTH + _LEFT) / 2}" y="{HEIGHT - 10}" font-size="12" '
                   f'text-anchor="middle">{escape(self.x_label)}</text>')
        out.append(f'<text x="14" y="{(HEIGHT - _BOTTOM + _TOP) / 2}" font-size="12" '
                   f'text-anchor="middle" transform="rotate(-90 14 '
                   f'{(HEIGHT - _BOTTOM + _TOP) / 2})">{escape(self.y_label)}</text>')
        out.append("</svg>")
        return "\n".join(out)


def histogram(values: Sequence[float], title: str, x_label: str, marker: float | None = None,
              marker_label: str = "") -> str:
    v = np.asarray(values, float)
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.15, 1.0)
    edges = np.linspace(lo - pad, hi + pad, 16)
    counts, _ = np.histogram(v, edges)
    chart = Chart(title, x_label, "edges", (float(edges[0]), float(edges[-1])),
                  (0.0, float(counts.max()) * 1.2))
    for k, c in enumerate(counts):
        if c:
            chart.bar(float(edges[k]), float(edges[k + 1]), float(c))
    if marker is not None:
        chart.line([marker, marker], [0.0, float(counts.max()) * 1.15], "#e45756", "5 3")
        chart.label(marker, float(counts.max()) * 1.12, f" {marker_label}", "#e45756")
    return chart.svg()

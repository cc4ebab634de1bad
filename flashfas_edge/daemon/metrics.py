"""Prometheus metrics of the daemon, written in the text exposition format (version 0.0.4).

Only counters, gauges and histograms with fixed label sets are needed, so the exposition is written
here rather than pulling in a client library: checks by verdict/reason, per-stage latency
histograms, queue depth, camera frame rate, uptime.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. A check's stages run from well under a millisecond (decide) to the whole flash sequence
# (capture, ~0.2–0.5 s at 30 fps), so the buckets span 0.5 ms … 10 s.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...] = ()) -> None:
        self.name, self.help_text, self.label_names = name, help_text, label_names
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self._values[label_values] = self._values.get(label_values, 0.0) + amount

    def value(self, *label_values: str) -> float:
        with self._lock:
            return self._values.get(label_values, 0.0)

    def samples(self) -> dict[tuple[str, ...], float]:
        with self._lock:
            return dict(self._values)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} counter"
        for values, count in sorted(self.samples().items()):
            yield f"{self.name}{_labels(self.label_names, values)} {_number(count)}"


class Gauge:
    """A gauge read at scrape time from a callable (so it is never stale)."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float | None]) -> None:
        self.name, self.help_text, self._read = name, help_text, read

    def render(self) -> Iterable[str]:
        value = self._read()
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} gauge"
        if value is not None:
            yield f"{self.name} {_number(value)}"


class Histogram:
    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS_S,
    ) -> None:
        self.name, self.help_text, self.label_names = name, help_text, label_names
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *label_values: str) -> None:
        with self._lock:
            counts, totals = self._series.setdefault(
                label_values, ([0] * (len(self.buckets) + 1), [0.0])
            )
            for i, upper in enumerate(self.buckets):
                if value <= upper:
                    counts[i] += 1
            counts[-1] += 1  # +Inf bucket == count
            totals[0] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            series = {k: (list(c), t[0]) for k, (c, t) in self._series.items()}
        for values, (counts, total) in sorted(series.items()):
            for upper, count in zip((*self.buckets, math.inf), counts, strict=True):
                le = f'le="{_number(upper)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, values, le)} {count}"
            yield f"{self.name}_sum{_labels(self.label_names, values)} {_number(total)}"
            yield f"{self.name}_count{_labels(self.label_names, values)} {counts[-1]}"


class DaemonMetrics:
    """Every metric the daemon exports; gauges read live values through the given callables."""

    def __init__(
        self,
        queue_depth: Callable[[], float | None],
        camera_fps: Callable[[], float | None],
        uptime_s: Callable[[], float | None],
        ready: Callable[[], float | None],
    ) -> None:
        self.checks = Counter(
            "flashfas_checks_total", "Liveness checks answered, by verdict and reason.",
            ("kind", "verdict", "reason"),
        )
        self.evaluations = Counter(
            "flashfas_evaluations_total",
            "Uploaded recordings evaluated (never an access decision), by outcome and reason.",
            ("outcome", "reason"),
        )
        self.rejected = Counter(
            "flashfas_requests_rejected_total",
            "Check requests answered with an error instead of a verdict, by error code.",
            ("code",),
        )
        self.stage_latency = Histogram(
            "flashfas_stage_latency_seconds",
            "Duration of each stage of a check (docs/ARCHITECTURE.md §1).",
            ("stage",),
        )
        self.check_latency = Histogram(
            "flashfas_check_latency_seconds",
            "Request-to-verdict time of a check, queueing included.", ("kind",),
        )
        self.gauges = (
            Gauge("flashfas_queue_depth", "Checks running or waiting for the camera.", queue_depth),
            Gauge("flashfas_camera_fps", "Measured camera frame rate over the last second.",
                  camera_fps),
            Gauge("flashfas_uptime_seconds", "Seconds since the daemon started.", uptime_s),
            Gauge("flashfas_ready", "1 when warmed up and the self-test passed.", ready),
        )

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.checks, self.evaluations, self.rejected, self.stage_latency,
                       self.check_latency, *self.gauges):
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"

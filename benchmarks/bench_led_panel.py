"""The LED panel through its real driver and the firmware's C core on a pty (firmware_ctrl/).

Measures, on this machine:

- serial round trip: STATUS and TIME commands, host write → answer decoded (pty; a real panel at
  115200 baud adds ~1 ms of line time per 12-byte frame each way);
- onset accuracy of the clock mapping: the onset each step's MCU timestamp maps to on the host
  clock minus the host time the simulated emitters really switched, over sequences spaced past
  the flash-rate window, the MCU clock 7.3 s off and drifting 250 ppm;
- added time per check: full checks (live face, office light, the default bundle on ONNX Runtime)
  on the LED panel and, interleaved, on the simulated flash (the baseline), each spaced 1.2 s
  apart; the stages ``flash`` and ``total`` from the check's own timings. Then checks back to
  back, where the panel's flash-rate cap (≤ 3 flashes in any second) makes the driver wait.

usage: python benchmarks/bench_led_panel.py [--n 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flashfas_edge.clock import monotonic_us  # noqa: E402
from flashfas_edge.face.ground_truth import GroundTruthLandmarks  # noqa: E402
from flashfas_edge.flash.base import FlashSchedule, FlashState  # noqa: E402
from flashfas_edge.flash.led_protocol import CMD_STATUS  # noqa: E402
from flashfas_edge.flash.led_serial import LedSerialFlash  # noqa: E402
from flashfas_edge.inference.factory import create_backend  # noqa: E402
from flashfas_edge.pipeline.config import PipelineConfig  # noqa: E402
from flashfas_edge.pipeline.pipeline import Pipeline  # noqa: E402
from flashfas_edge.sim.device import PROFILES  # noqa: E402
from flashfas_edge.sim.kiosk import SimKiosk, Subject  # noqa: E402
from flashfas_edge.sim.kiosk_camera import SimCamera  # noqa: E402
from flashfas_edge.sim.kiosk_flash import SimFlashDriver  # noqa: E402
from flashfas_edge.sim.led_panel import PanelSimulator, led_panel_profile, start_led_panel  # noqa: E402,E501


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def link_figures(directory: Path, n: int) -> None:
    panel = PanelSimulator(directory / "ttyBENCH", drift_ppm=250.0)
    panel.start()
    flash = LedSerialFlash(str(panel.port))
    flash.start()
    try:
        trips = []
        with flash._lock:
            for _ in range(500):
                t0 = monotonic_us()
                flash._request(CMD_STATUS)
                trips.append(monotonic_us() - t0)
        print(f"serial round trip (STATUS, pty): p50 {statistics.median(trips):.0f} µs, "
              f"p95 {pct(trips, 0.95):.0f} µs, max {max(trips)} µs over {len(trips)}")
        time.sleep(1.5)
        schedule = FlashSchedule(tuple(FlashState((1.0, 1.0, 1.0), v)
                                       for v in (0.75, 0.0, 1.0, 0.25, 0.5)), 60_000, "ab" * 16)
        errors = []
        for _ in range(n):
            playback = flash.play(schedule, timeout_s=3.0)
            time.sleep(0.03)
            truth = [e for e in panel.events if e.host_us >= playback.onsets_us[0] - 5_000]
            truth_us = [e.host_us for e in truth]
            errors += [a - b for a, b in zip((*playback.onsets_us, playback.end_us),
                                             truth_us[:6], strict=True)]
            time.sleep(1.1)
        absolute = [abs(e) for e in errors]
        print(f"onset mapping error over {len(errors)} edges: "
              f"median {statistics.median(errors):+.0f} µs, "
              f"p95 |error| {pct(absolute, 0.95):.0f} µs, max |error| {max(absolute)} µs; "
              f"drift estimated {flash.clock.drift_ppm:.0f} ppm (true 250)")
    finally:
        flash.stop()
        panel.stop()


def check_figures(directory: Path, n: int) -> None:
    backend = create_backend(ROOT / "engines" / "edge-default", "onnxruntime", intra_op_threads=1)
    sim_kiosk = SimKiosk(profile=PROFILES[1], width=640, height=480, seed=9)
    led_kiosk = SimKiosk(profile=led_panel_profile(PROFILES[1]), width=640, height=480, seed=9)
    panel = start_led_panel(led_kiosk, directory / "ttyCHECK")
    rigs = {
        "sim flash": (sim_kiosk, Pipeline(SimCamera(sim_kiosk), SimFlashDriver(sim_kiosk),
                                          GroundTruthLandmarks(), backend,
                                          PipelineConfig(latency_us=sim_kiosk.latency_us))),
        "LED panel": (led_kiosk, Pipeline(SimCamera(led_kiosk), LedSerialFlash(str(panel.port)),
                                          GroundTruthLandmarks(), backend,
                                          PipelineConfig(latency_us=led_kiosk.latency_us))),
    }
    try:
        for kiosk, pipeline in rigs.values():
            kiosk.set_subject(Subject(attack_type="live", scenario="office", seed=11))
            pipeline.start()
        for spacing_s, label in ((1.2, "interleaved, spaced 1.2 s"), (0.0, "back to back")):
            flash_ms: dict[str, list[float]] = {k: [] for k in rigs}
            total_ms: dict[str, list[float]] = {k: [] for k in rigs}
            verdicts: dict[str, list[str]] = {k: [] for k in rigs}
            for name in rigs:  # warm-up check each
                rigs[name][1].run_check()
            for _ in range(n if spacing_s else 0):
                for name, (_, pipeline) in rigs.items():
                    time.sleep(spacing_s)
                    result = pipeline.run_check()
                    flash_ms[name].append(result.timings_ms.get("flash", float("nan")))
                    total_ms[name].append(result.timings_ms["total"])
                    verdicts[name].append(result.verdict.value)
            if spacing_s == 0.0:
                # back to back on one pipeline at a time: the LED panel's own rate, not the other's
                for name, (_, pipeline) in rigs.items():
                    flash_ms[name], total_ms[name], verdicts[name] = [], [], []
                    for _ in range(n):
                        result = pipeline.run_check()
                        flash_ms[name].append(result.timings_ms.get("flash", float("nan")))
                        total_ms[name].append(result.timings_ms["total"])
                        verdicts[name].append(result.verdict.value)
            print(f"checks {label} (n = {n} each):")
            for name in rigs:
                live = verdicts[name].count("live")
                print(f"  {name:<10} flash stage p50 {statistics.median(flash_ms[name]):6.1f} ms,"
                      f" check total p50 {statistics.median(total_ms[name]):6.1f} ms, "
                      f"p95 {pct(total_ms[name], 0.95):6.1f} ms; live {live}/{n}")
            added = statistics.median(total_ms["LED panel"]) - statistics.median(
                total_ms["sim flash"])
            print(f"  added per check by the LED panel: {added:+.1f} ms (p50 total)")
    finally:
        for _, pipeline in rigs.values():
            pipeline.stop()
        panel.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-led-") as tmp:
        link_figures(Path(tmp), args.n)
        check_figures(Path(tmp), args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The display flash's two surfaces against the simulated flash: what each adds to a check.

Simulated kiosks (same device profile, live face, office light, the default bundle on ONNX
Runtime, landmarks from the simulator's ground truth), each lit by its own flash:

- ``sim flash``: the simulated kiosk's own virtual display (the baseline);
- ``browser``: the real ``DisplayFlash`` driver, its WebSocket served by the daemon's own endpoint
  (``api/flash_socket.py``) on loopback, and headless Chromium showing a kiosk page with the flash
  client; the states Chromium reports it presented light the scene;
- ``window``: the real ``WindowDisplayFlash`` (pygame, SDL's dummy video driver: no vsync wait).

Each surface runs against the simulated flash (two rendered cameras at a time, as
bench_led_panel.py does), checks interleaved one rig after the other, spaced 1.2 s apart; the
stages ``flash`` and ``total`` come from each check's own timings. Also the browser client's ping
round trip.

usage: python benchmarks/bench_display_flash.py [--n 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # the window surface without a screen

# module level: FastAPI reads the route's annotations by name
from fastapi import FastAPI, Response, WebSocket  # noqa: E402

from flashfas_edge.api.flash_socket import serve_flash_client  # noqa: E402
from flashfas_edge.clock import monotonic_us  # noqa: E402
from flashfas_edge.face.ground_truth import GroundTruthLandmarks  # noqa: E402
from flashfas_edge.flash.base import FlashDriver, FlashError  # noqa: E402
from flashfas_edge.flash.display_flash import DisplayFlash, client_script  # noqa: E402
from flashfas_edge.flash.display_window import WindowDisplayFlash  # noqa: E402
from flashfas_edge.inference.factory import create_backend  # noqa: E402
from flashfas_edge.pipeline.config import PipelineConfig  # noqa: E402
from flashfas_edge.pipeline.pipeline import Pipeline  # noqa: E402
from flashfas_edge.sim.device import PROFILES  # noqa: E402
from flashfas_edge.sim.kiosk import SimKiosk, Subject  # noqa: E402
from flashfas_edge.sim.kiosk_camera import SimCamera  # noqa: E402
from flashfas_edge.sim.kiosk_flash import PresentedLight, SimFlashDriver  # noqa: E402

KEY = "bench-" + "0123456789abcdef" * 2


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def serve_socket(flash: DisplayFlash) -> tuple[str, object]:
    """The daemon's flash endpoints (client.js, /v1/flash/ws) on a loopback port."""
    import socket

    import uvicorn

    app = FastAPI()

    @app.get("/v1/flash/client.js")
    async def script() -> Response:
        return Response(client_script(), media_type="text/javascript")

    @app.websocket("/v1/flash/ws")
    async def socket_route(ws: WebSocket) -> None:
        await serve_flash_client(ws, KEY, flash)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio",
                                           lifespan="off"))
    threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                     daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


def start_chromium(url: str, directory: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("headless Chromium is needed (Debian: apt-get install chromium)")
    page = directory / "kiosk.html"
    page.write_text(f'<!doctype html><html><body style="margin:0;background:#203040">'
                    f'<script src="{url}/v1/flash/client.js"></script><script>'
                    f'FlashfasFlash.connect({{daemon: "{url}", apiKey: "{KEY}"}});'
                    f'</script></body></html>')
    return subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={directory / 'profile'}", "--window-size=320,240", page.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_self_test(flash: FlashDriver, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            flash.self_test()
            return
        except FlashError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ping_figures(flash: DisplayFlash, n: int = 200) -> None:
    trips = []
    with flash._lock:
        client = flash._require_client()
        for _ in range(n):
            t0 = monotonic_us()
            if flash._ping(client):
                trips.append(monotonic_us() - t0)
    print(f"browser client ping round trip (WebSocket, loopback): p50 "
          f"{statistics.median(trips) / 1000:.2f} ms, p95 {pct(trips, 0.95) / 1000:.2f} ms, "
          f"max {max(trips) / 1000:.2f} ms ({len(trips)} of {n} answered)")


def make_flash(surface: str, kiosk: SimKiosk) -> FlashDriver:
    if surface == "sim flash":
        return SimFlashDriver(kiosk)
    if surface == "browser":
        return DisplayFlash(on_presented=PresentedLight(kiosk))
    return WindowDisplayFlash(on_presented=PresentedLight(kiosk))


def run_checks(surface: str, n: int, backend: object, directory: Path) -> None:
    """``surface`` and the simulated flash, interleaved (two rendered cameras, as
    bench_led_panel.py runs them)."""
    names = ("sim flash", surface)
    kiosks = {name: SimKiosk(profile=PROFILES[1], width=640, height=480, seed=9)
              for name in names}
    flashes = {name: make_flash(name, kiosks[name]) for name in names}
    pipelines = {name: Pipeline(SimCamera(kiosks[name]), flashes[name], GroundTruthLandmarks(),
                                backend, PipelineConfig(latency_us=kiosks[name].latency_us))
                 for name in names}
    server = chromium = None
    try:
        browser_flash = flashes[surface]
        if isinstance(browser_flash, DisplayFlash):
            url, server = serve_socket(browser_flash)
            chromium = start_chromium(url, directory)
            browser_flash.start()
            wait_self_test(browser_flash)  # the page's client connected (pipeline.start tests it)
            ping_figures(browser_flash)
        for name, pipeline in pipelines.items():
            kiosks[name].set_subject(Subject(attack_type="live", scenario="office", seed=11))
            pipeline.start()
        flash_ms: dict[str, list[float]] = {k: [] for k in names}
        total_ms: dict[str, list[float]] = {k: [] for k in names}
        verdicts: dict[str, list[str]] = {k: [] for k in names}
        for pipeline in pipelines.values():  # warm-up check each
            pipeline.run_check()
        for _ in range(n):
            for name, pipeline in pipelines.items():
                time.sleep(1.2)
                result = pipeline.run_check()
                flash_ms[name].append(result.timings_ms.get("flash", float("nan")))
                total_ms[name].append(result.timings_ms["total"])
                shown = f"{result.verdict.value}/{result.reason.value}"
                if result.reason.value == "flash_unavailable":
                    shown += f" ({result.detail.get('error')})"
                verdicts[name].append(shown)
        print(f"{surface} against the simulated flash, interleaved, spaced 1.2 s (n = {n} each; "
              "landmarks: simulator ground truth):")
        for name in names:
            live = sum(v.startswith("live/") for v in verdicts[name])
            others = sorted({v for v in verdicts[name] if not v.startswith("live/")})
            print(f"  {name:<9} flash stage p50 {statistics.median(flash_ms[name]):6.1f} ms,"
                  f" check total p50 {statistics.median(total_ms[name]):6.1f} ms, "
                  f"p95 {pct(total_ms[name], 0.95):6.1f} ms; live {live}/{n}"
                  + (f" (others: {'; '.join(others)})" if others else ""))
        added_total = statistics.median(total_ms[surface]) - statistics.median(
            total_ms["sim flash"])
        added_flash = statistics.median(flash_ms[surface]) - statistics.median(
            flash_ms["sim flash"])
        print(f"  added per check by the {surface} surface: {added_total:+.1f} ms (p50 total), "
              f"{added_flash:+.1f} ms (p50 flash stage)")
    finally:
        for pipeline in pipelines.values():
            pipeline.stop()
        if chromium is not None:
            chromium.terminate()
            chromium.wait(timeout=10)
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--surfaces", nargs="+", choices=("browser", "window"),
                        default=["browser", "window"])
    args = parser.parse_args()
    backend = create_backend(ROOT / "engines" / "edge-default", "onnxruntime", intra_op_threads=1)
    for surface in args.surfaces:
        with tempfile.TemporaryDirectory(prefix="bench-display-") as tmp:
            run_checks(surface, args.n, backend, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())

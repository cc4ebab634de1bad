"""``flashfas-edge demo`` (what ``make demo`` runs): the whole product on the simulated kiosk.

Starts the real daemon (``flashfas-edge serve --sim``) as a subprocess on a free loopback port with
the default bundle on ONNX Runtime, then — only through the REST API — puts live faces and every
attack type in front of the virtual camera under several ambient scenarios, runs a check for each,
prints a table (scene, verdict, score, latency) and a summary. Exit code 1 if any attack was
accepted as live: the one failure an access-control product must never have.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from flashfas_edge.api.client import ApiClientError, LivenessClient
from flashfas_edge.kiosk.sim_scene import INJECTED_REPLAY, scene_error

DEFAULT_AMBIENTS = ("office", "dark_room", "backlight")
DEFAULT_SCENES = ("live", "print", "replay", "mask")
EXIT_OK, EXIT_ATTACK_ACCEPTED, EXIT_DAEMON_FAILED = 0, 1, 2


@dataclass
class DemoRow:
    scene: str
    ambient: str
    seed: int
    verdict: str
    reason: str
    score: float | None
    latency_ms: float
    capture_ms: float | None
    processing_ms: float | None
    check_id: str | None
    attempts: int = 1
    safety_wait_ms: float = 0.0  # before the flash: the flashes of the checks just before


class DaemonProcess:
    """``flashfas-edge serve`` in a subprocess; its stderr is kept for the error report."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flashfas_edge.cli", "serve", "--config", str(config_path),
             "--sim", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=self._log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_for_url(self, timeout_s: float) -> str:
        found: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("listening on "):
                    found.append(line.split(" ", 2)[2].strip())
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not found:
            raise RuntimeError(f"the daemon did not start listening:\n{self.log_tail()}")
        return found[0]

    def log_tail(self, lines: int = 25) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def demo_config(directory: Path, bundle: Path | None, flash: str = "sim",
                landmarks: str = "ground_truth") -> tuple[Path, str]:
    """A config + API key for a throwaway daemon on 127.0.0.1:<free port>; ``flash="led-sim"``:
    the LED-panel driver on the panel firmware's simulator (docs/LED_PANEL.md); ``landmarks``: the
    landmark provider (``mtcnn``: the real camera's detector on the simulated frames)."""
    key = secrets.token_hex(32)
    key_path = directory / "api-key"
    key_path.write_text(key + "\n")
    key_path.chmod(0o600)
    lines = [
        "[server]", 'host = "127.0.0.1"', "port = 0", f'api_key_file = "{key_path}"',
        "[queue]", "check_timeout_s = 30.0",
        "[audit]", f'path = "{directory / "audit.jsonl"}"',
        "[kiosk]", 'mode = "sim"',
        *(["[kiosk.flash]", 'kind = "led_serial"'] if flash == "led-sim" else []),
        "[model]", 'backend = "onnxruntime"',
    ]
    if bundle is not None:
        lines.append(f'bundle = "{bundle.resolve()}"')
    lines += ["[pipeline.landmarks]", f'provider = "{landmarks}"']
    path = directory / "demo.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, key


def wait_ready(client: LivenessClient, daemon: DaemonProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}):\n"
                               f"{daemon.log_tail()}")
        try:
            client.health()
            return
        except ApiClientError as exc:
            last = f"{exc.code}: {exc.message}"
        time.sleep(0.25)
    raise RuntimeError(f"the daemon was not ready after {timeout_s:.0f} s ({last}):\n"
                       f"{daemon.log_tail()}")


# Stages that are not processing after the capture: before the flash (the face found, the
# challenge drawn, the wait for flash safety), the flash and capture themselves, and the total.
_NOT_AFTER_CAPTURE = {"presence", "challenge", "safety_wait", "flash", "capture", "total"}


def run_one(client: LivenessClient, scene: str, ambient: str, seed: int,
            max_retries: int = 2, max_attempts: int = 6) -> DemoRow:
    """Show ``scene`` to the virtual camera and check, asking again on ``retry`` like a kiosk
    app ("please look at the screen"): ``max_retries`` times for a quality gate, and up to
    ``max_attempts`` checks when the virtual camera dropped frames (``no_clean_frame``: the
    renderer cannot keep 30 fps on a busy machine)."""
    retries = 0
    if scene == INJECTED_REPLAY:
        client.set_sim_scene(scene)  # the camera stream replaced by the previous check's frames
    else:
        client.set_sim_scene(scene, ambient, seed=seed)
    for attempt in range(1, max_attempts + 1):
        started = time.perf_counter()
        try:
            answer = client.check(client_ref=f"demo-{scene}-{ambient}-{seed}-{attempt}")
        except ApiClientError as exc:
            return DemoRow(scene, ambient, seed, "error", exc.code, None,
                           (time.perf_counter() - started) * 1000, None, None, None, attempt)
        if answer["verdict"] != "retry":
            break
        retries += answer["reason"] != "no_clean_frame"
        if retries > max_retries:
            break
    latency_ms = (time.perf_counter() - started) * 1000
    timings = answer.get("timings_ms", {})
    capture_ms = sum(timings.get(k, 0.0) for k in ("challenge", "flash", "capture"))
    processing_ms = sum(v for k, v in timings.items() if k not in _NOT_AFTER_CAPTURE)
    return DemoRow(scene, ambient, seed, answer["verdict"], answer["reason"], answer["score"],
                   latency_ms, capture_ms, processing_ms, answer["check_id"], attempt,
                   timings.get("safety_wait", 0.0))


def _fmt_score(score: float | None) -> str:
    return "   -  " if score is None else f"{score:6.3f}"


def print_row(row: DemoRow) -> None:
    attack = row.scene != "live"
    flag = ""
    if attack and row.verdict == "live":
        flag = "  <-- ATTACK ACCEPTED"
    elif not attack and row.verdict != "live":
        flag = "  (live face not accepted)"
    tries = f" (try {row.attempts})" if row.attempts > 1 else ""
    print(f"{row.scene:<16} {row.ambient:<13} {row.verdict:<6} {row.reason:<22} "
          f"{_fmt_score(row.score)} {row.latency_ms:8.0f} ms{tries}{flag}", flush=True)


def summarise(rows: list[DemoRow]) -> tuple[str, bool]:
    out = []
    attacks = [r for r in rows if r.scene != "live"]
    lives = [r for r in rows if r.scene == "live"]
    accepted = [r for r in attacks if r.verdict == "live"]
    out.append("")
    out.append("summary")
    for scene in sorted({r.scene for r in rows}, key=lambda s: (s != "live", s)):
        mine = [r for r in rows if r.scene == scene]
        counts = {v: sum(r.verdict == v for r in mine) for v in ("live", "spoof", "retry", "error")}
        shown = "  ".join(f"{v} {n}" for v, n in counts.items() if n)
        out.append(f"  {scene:<16} {len(mine):3d} scenes: {shown}")
    if attacks:
        out.append(f"  attacks accepted as live: {len(accepted)} / {len(attacks)}")
    if lives:
        passed = sum(r.verdict == "live" for r in lives)
        retried = sum(r.verdict == "retry" for r in lives)
        out.append(f"  live faces accepted:      {passed} / {len(lives)} "
                   f"({retried} asked to retry)")
    latencies = [r.latency_ms for r in rows if r.verdict != "error"]
    if latencies:
        p95 = sorted(latencies)[max(0, round(0.95 * len(latencies)) - 1)]
        out.append(f"  request-to-verdict: p50 {statistics.median(latencies):.0f} ms, "
                   f"p95 {p95:.0f} ms")
    processing = [r.processing_ms for r in rows if r.processing_ms is not None]
    if processing:
        out.append(f"  processing after capture: p50 {statistics.median(processing):.0f} ms")
    waits = [r.safety_wait_ms for r in rows if r.safety_wait_ms > 0]
    if latencies:
        shown = f" (p50 {statistics.median(waits):.0f} ms)" if waits else ""
        out.append(f"  waited for flash safety:  {len(waits)} of {len(latencies)} checks{shown}")
    verdict = "FAIL: an attack was accepted as live" if accepted else \
        "PASS: no attack was accepted as live"
    out.append(verdict)
    return "\n".join(out), bool(accepted)


def run_demo(
    *,
    bundle: Path | None,
    ambients: list[str] | None,
    scenes: list[str] | None,
    repeats: int,
    json_out: Path | None,
    ready_timeout_s: float,
    replay_after_live: bool = True,
    flash: str = "sim",
    landmarks: str = "ground_truth",
) -> int:
    ambients = list(ambients or DEFAULT_AMBIENTS)
    scenes = list(scenes or DEFAULT_SCENES)
    problems = [e for s in scenes if (e := scene_error(s))]
    problems += [e for a in ambients if (e := scene_error("live", a))]
    if problems:  # before anything starts
        for problem in problems:
            print(f"flashfas-edge demo: {problem}", file=sys.stderr)
        return EXIT_DAEMON_FAILED
    if bundle is None:
        from flashfas_edge.config import ConfigError
        from flashfas_edge.kiosk.assembly import default_bundle_dir

        try:
            bundle = default_bundle_dir()
        except ConfigError as exc:
            print(f"flashfas-edge demo: {exc}", file=sys.stderr)
            return EXIT_DAEMON_FAILED
    with tempfile.TemporaryDirectory(prefix="flashfas-demo-") as tmp:
        directory = Path(tmp)
        config_path, key = demo_config(directory, bundle, flash, landmarks)
        print("flashfas-edge demo: starting the daemon on the simulated kiosk ...", flush=True)
        daemon = DaemonProcess(config_path, directory / "daemon.log")
        rows: list[DemoRow] = []
        try:
            url = daemon.wait_for_url(60)
            with LivenessClient(url, key, timeout_s=60) as client:
                wait_ready(client, daemon, ready_timeout_s)
                status = client.status()
                print(f"daemon ready at {url}: model {status['model']['name']} "
                      f"({(status['model']['sha256'] or '')[:12]}), backend "
                      f"{status['backend']['name']} on {status['backend']['device']}, "
                      f"landmarks {landmarks}\n",
                      flush=True)
                print(f"{'scene':<16} {'ambient':<13} {'verdict':<6} {'reason':<22} "
                      f"{'score':>6} {'latency':>11}")
                seed = 1
                for ambient in ambients:
                    for scene in scenes:
                        for _ in range(repeats):
                            row = run_one(client, scene, ambient, seed)
                            seed += 1
                            rows.append(row)
                            print_row(row)
                            if scene == "live" and replay_after_live and row.verdict != "error":
                                replayed = run_one(client, INJECTED_REPLAY, ambient, seed)
                                rows.append(replayed)
                                print_row(replayed)
        except (RuntimeError, ApiClientError) as exc:
            print(f"flashfas-edge demo: {exc}", file=sys.stderr)
            daemon.stop()
            return EXIT_DAEMON_FAILED
        finally:
            code = daemon.stop()
        text, attack_accepted = summarise(rows)
        print(text)
        if json_out is not None:
            json_out.write_text(json.dumps([asdict(r) for r in rows], indent=2))
        if code not in (0, -signal.SIGTERM):
            print(f"the daemon exited with {code}:\n{daemon.log_tail()}", file=sys.stderr)
            return EXIT_DAEMON_FAILED
        if any(r.verdict == "error" for r in rows):
            return EXIT_DAEMON_FAILED if not attack_accepted else EXIT_ATTACK_ACCEPTED
        return EXIT_ATTACK_ACCEPTED if attack_accepted else EXIT_OK

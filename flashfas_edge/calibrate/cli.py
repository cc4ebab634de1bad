"""``flashfas-edge calibrate``: measure the install site, write the calibration file the daemon
reads and a report next to it (docs/CALIBRATE.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from flashfas_edge.config import EX_CONFIG

EXIT_SITE_FAIL = 1  # calibrated, but the site failed (or --verify: recalibration is due)
EXIT_NOT_CALIBRATED = 2  # the measurement could not be completed

_EPILOG = """examples:
  flashfas-edge calibrate                               # the kiosk in /etc/flashfas-edge/…toml
  flashfas-edge calibrate --config site.toml --out /etc/flashfas-edge/calibration.json
  flashfas-edge calibrate --sim --yes                   # simulated kiosk, ./calibration.json
  flashfas-edge calibrate --sim --yes --scenario sunlight --json
  flashfas-edge calibrate --sim --yes --flash led-sim --mains-hz 60 --flicker 0.08
  flashfas-edge calibrate --verify                      # is recalibration due? changes nothing
exit codes: 0 calibrated (site pass or warn) / --verify: still valid, 1 site fail (file written)
/ --verify: recalibration due, 2 could not measure, 78 invalid configuration
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    cal = subparsers.add_parser(
        "calibrate", help="measure the install site: latency, exposure, colour, SNR, threshold",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cal.add_argument("--config", type=Path, help="TOML configuration file")
    cal.add_argument("--out", type=Path,
                     help="calibration file to write (default: the config's calibration_file, "
                          "else ./calibration.json); the HTML report goes next to it")
    cal.add_argument("--verify", action="store_true",
                     help="re-measure latency and SNR against the stored calibration; write "
                          "nothing")
    cal.add_argument("--yes", action="store_true", help="no prompts (scripted installs)")
    cal.add_argument("--json", action="store_true",
                     help="print the result as JSON on stdout (progress goes to stderr)")
    cal.add_argument("--sim", action="store_true", help="calibrate the simulated kiosk")
    cal.add_argument("--flash-client-wait-s", type=float, default=120.0, metavar="S",
                     help="browser display flash: how long to wait for the kiosk page's flash "
                     "client to connect (calibrate serves it on the daemon's address; default "
                     "120)")
    cal.add_argument("--flash", choices=("sim", "led-sim"), default="sim",
                     help="with --sim: the simulated flash, or the LED-panel driver on the "
                          "panel firmware's simulator (pty)")
    cal.add_argument("--scenario", help="with --sim: ambient scenario (office, dark_room, "
                                        "sunlight, ...)")
    cal.add_argument("--mains-hz", type=float, choices=(50.0, 60.0),
                     help="with --sim: mains frequency of the room light")
    cal.add_argument("--flicker", type=float,
                     help="with --sim: relative flicker amplitude of the room light (0–0.5)")
    cal.add_argument("--seed", type=int, default=0, help="with --sim: first subject seed")
    cal.add_argument("--live-checks", type=int, default=10,
                     help="live checks that set the threshold (default 10)")
    cal.add_argument("--target-bpcer", type=float, default=0.05,
                     help="share of live users the threshold may refuse (default 0.05)")
    cal.add_argument("--toggles", type=int, default=12,
                     help="flash toggles for the latency (default 12; each about 1 s)")
    cal.add_argument("--hfov-deg", type=float,
                     help="the camera's horizontal field of view, for distances (default: "
                          "the simulated camera's, else 65)")
    cal.set_defaults(func=_calibrate)


class ConsoleUi:
    """Steps, progress bars and prompts on the terminal (stderr with --json)."""

    def __init__(self, out: TextIO, ask: bool) -> None:
        self.out = out
        self.ask = ask
        self._bar = False

    def _end_bar(self) -> None:
        if self._bar:
            self.out.write("\n")
            self._bar = False

    def step(self, title: str) -> None:
        self._end_bar()
        self.out.write(f"== {title}\n")
        self.out.flush()

    def progress(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        self.out.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        self.out.flush()
        self._bar = True

    def prompt(self, message: str) -> None:
        self._end_bar()
        if not self.ask:
            self.out.write(f"  ({message}: --yes, going on)\n")
            return
        self.out.write(f"{message} ")
        self.out.flush()
        input()

    def note(self, message: str) -> None:
        self._end_bar()
        self.out.write(f"  {message}\n")
        self.out.flush()


def _check_args(args: argparse.Namespace) -> str | None:
    sim_only = [n for n, v in (("--scenario", args.scenario), ("--mains-hz", args.mains_hz),
                               ("--flicker", args.flicker)) if v is not None]
    if args.flash != "sim":
        sim_only.append("--flash")
    if sim_only and not args.sim:
        return f"{', '.join(sim_only)} need --sim"
    if args.flicker is not None and not 0 <= args.flicker <= 0.5:
        return "--flicker must be in 0…0.5"
    if not 3 <= args.live_checks <= 200:
        return "--live-checks must be in 3…200"
    if not 0 < args.target_bpcer < 0.5:
        return "--target-bpcer must be in (0, 0.5)"
    if not 4 <= args.toggles <= 100:
        return "--toggles must be in 4…100"
    if args.sim and args.scenario is not None:
        from flashfas_edge.kiosk.sim_scene import scene_error

        return scene_error("live", args.scenario)
    return None


def _calibrate(args: argparse.Namespace) -> int:
    from flashfas_edge.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

    problem = _check_args(args)
    if problem:
        print(f"flashfas-edge calibrate: {problem}", file=sys.stderr)
        return EX_CONFIG
    config_path = args.config
    if config_path is None and not args.sim and DEFAULT_CONFIG_PATH.is_file():
        config_path = DEFAULT_CONFIG_PATH
    overrides: dict[str, dict[str, Any]] = {}
    if args.sim and args.flash == "led-sim":
        overrides["kiosk"] = {"flash": {"kind": "led_serial"}}
    from flashfas_edge.inference.backend import BackendError
    from flashfas_edge.inference.bundle import BundleError

    try:
        config = load_config(config_path, sim=args.sim, overrides=overrides,
                             with_calibration=args.verify)
        return _run(args, config)
    except (ConfigError, BundleError, BackendError) as exc:
        print(f"flashfas-edge calibrate: {exc}", file=sys.stderr)
        return EX_CONFIG


def _run(args: argparse.Namespace, config: Any) -> int:
    from flashfas_edge.calibrate.rig import CalibrationError, Rig
    from flashfas_edge.calibrate.session import Options
    from flashfas_edge.capture.base import CameraError
    from flashfas_edge.config import ConfigError
    from flashfas_edge.face.factory import create_landmark_provider
    from flashfas_edge.flash.base import FlashError
    from flashfas_edge.kiosk.assembly import build_devices
    from flashfas_edge.pipeline.challenge import idle_between_sequences

    ui = ConsoleUi(sys.stderr if args.json else sys.stdout, ask=not args.yes)
    options = Options(toggles=args.toggles, live_checks=args.live_checks,
                      target_bpcer=args.target_bpcer, hfov_deg=args.hfov_deg,
                      scenario=args.scenario, seed=args.seed, mains_hz=args.mains_hz,
                      flicker=args.flicker)
    out = args.out or config.daemon.calibration_file or Path("calibration.json")
    if args.verify and config.calibration is None:
        raise ConfigError("--verify needs a calibration file: name it in the configuration "
                          "(calibration_file)")
    camera, flash, scene = build_devices(config)
    challenge = config.pipeline.challenge
    rig = Rig(camera, flash, create_landmark_provider(config.pipeline.landmarks),
              idle=idle_between_sequences(challenge, flash),
              max_flashes_per_s=challenge.max_flashes_per_s)
    started = time.monotonic()
    from flashfas_edge.calibrate.browser_flash import browser_flash_served

    try:
        with browser_flash_served(config, flash, ui.note):
            rig.start(flash_wait_s=args.flash_client_wait_s)
            if args.verify:
                return _verify(args, config, rig, scene, ui, options, started)
            return _full(args, config, rig, scene, ui, options, out, started)
    except (CalibrationError, CameraError, FlashError) as exc:
        ui.note(f"calibration stopped: {exc}")
        if args.json:
            print(json.dumps({"error": str(exc)}))
        return EXIT_NOT_CALIBRATED
    finally:
        rig.stop()


def _verify(args, config, rig, scene, ui, options, started) -> int:  # type: ignore[no-untyped-def]
    from flashfas_edge.calibrate.session import verify

    outcome = verify(config, config.calibration, rig, scene, ui, options)
    summary = {**outcome.summary(), "seconds": round(time.monotonic() - started, 1)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        ui.step("verdict")
        state = "RECALIBRATION DUE" if outcome.due else "calibration still valid"
        ui.note(f"{state}: latency {outcome.latency.median_us / 1000:.1f} ms (calibrated "
                f"{config.calibration.latency_us / 1000:.1f}), flash SNR {outcome.flash_snr:.1f}")
        for reason in outcome.reasons:
            ui.note(f"- {reason}")
    return EXIT_SITE_FAIL if outcome.due else 0


def _full(args, config, rig, scene, ui, options, out, started) -> int:  # type: ignore[no-untyped-def]
    from flashfas_edge.calibrate.report import html_report, report_path, terminal_summary
    from flashfas_edge.calibrate.session import BundleInfo, calibrate, write_calibration
    from flashfas_edge.inference.factory import create_backend
    from flashfas_edge.kiosk.assembly import default_bundle_dir
    from flashfas_edge.pipeline.pipeline import Pipeline, PipelineSetupError

    daemon = config.daemon
    backend = create_backend(daemon.model.bundle or default_bundle_dir(), daemon.model.backend,
                             intra_op_threads=daemon.model.threads, warm_up=False)
    bundle = backend.bundle
    info = BundleInfo(bundle.name, bundle.manifest_sha256, bundle.threshold_default)
    pipelines: dict[int, Any] = {}

    def live_check(k: int, latency_us: int) -> tuple[float | None, str]:
        if latency_us not in pipelines:
            from flashfas_edge.config import ConfigError
            from flashfas_edge.face.factory import create_landmark_provider

            time.sleep(1.1)  # the calibration sequences' flashes leave the safety window
            settings = config.pipeline.model_copy(update={"latency_us": latency_us,
                                                          "threshold_override": None})
            try:
                pipelines[latency_us] = Pipeline(rig.camera, rig.flash,
                                                 create_landmark_provider(settings.landmarks),
                                                 backend, settings)
            except PipelineSetupError as exc:
                raise ConfigError(str(exc)) from exc
            pipelines[latency_us].warm_up()
        pipeline = pipelines[latency_us]
        if scene is not None:
            from flashfas_edge.calibrate.session import show_sim_subject

            show_sim_subject(scene, config, options, options.seed + 1 + k)
        else:
            ui.prompt(f"Live check {k + 1}: one person steps in front of the kiosk as a user "
                      "would; press Enter")
        result = pipeline.run_check()
        if result.decided_by_score and result.score is not None:
            return float(result.score), result.reason.value
        return None, result.reason.value

    outcome = calibrate(config, rig, info, live_check, scene, ui, options)
    for pipeline in pipelines.values():
        pipeline.stop()
    write_calibration(outcome.calibration, out)
    gates = config.pipeline.gates
    calibration = outcome.calibration
    assert calibration.identity is not None and calibration.site is not None  # format 2
    title = f"FlashFAS Edge calibration — {calibration.identity.camera}"
    report_path(out).write_text(html_report(outcome, gates.min_flash_snr,
                                            gates.min_flash_snr_for_mismatch, title))
    seconds = round(time.monotonic() - started, 1)
    verdict = calibration.site.verdict
    if args.json:
        print(json.dumps({"file": str(out), "report": str(report_path(out)), "seconds": seconds,
                          "calibration": outcome.calibration.model_dump(mode="json",
                                                                        exclude_none=True)},
                         indent=2))
    else:
        ui.step("result")
        print(terminal_summary(outcome, out))
        print(f"took {seconds:.0f} s")
    return EXIT_SITE_FAIL if verdict == "fail" else 0

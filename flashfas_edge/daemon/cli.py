"""Sub-commands of the daemon: ``serve``, and the client commands ``check`` and ``sim``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flashfas_edge.config import EX_CONFIG

_SERVE_EPILOG = """examples:
  flashfas-edge serve                       # /etc/flashfas-edge/flashfas-edge.toml, real kiosk
  flashfas-edge serve --config systemd/flashfas-edge.toml   # the annotated example config
  flashfas-edge serve --sim --port 0        # a free loopback port, printed as 'listening on …'
  flashfas-edge serve --sim --scene print   # simulated kiosk showing a print attack
exit codes: 0 stopped cleanly, 78 invalid configuration / API key file / model bundle
"""
_CHECK_EPILOG = """examples:
  flashfas-edge check                       # one check, human-readable
  flashfas-edge check --json --url http://127.0.0.1:8787 --api-key-file ./api-key
  flashfas-edge check --url unix:/run/flashfas-edge/api.sock
exit codes: 0 live, 1 spoof or retry (the door stays closed), 2 the daemon could not answer
"""
_SIM_EPILOG = """examples:
  flashfas-edge sim --scene print --ambient office      # then: flashfas-edge check
  flashfas-edge sim --scene too_far --api-key-file /tmp/flashfas-edge-sim-XXXX/api-key
scenes: live | print | replay | mask | injected_replay (the previous check's frames) | a
quality-gate preset: no_face two_faces too_far too_near strong_motion too_dark overexposed
strong_ambient flash_never_shows. Only a daemon started with --sim (mode = "sim") has this route.
exit codes: 0 scene shown, 2 the daemon refused or could not answer
"""



def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    serve = subparsers.add_parser(
        "serve", help="run the liveness daemon (REST API on 127.0.0.1)", epilog=_SERVE_EPILOG,
        formatter_class=fmt)
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--sim", action="store_true", help="use the simulated kiosk")
    serve.add_argument("--host", help="override server.host (an IP address)")
    serve.add_argument("--port", type=int, help="override server.port (0: a free port)")
    serve.add_argument("--unix-socket", type=Path, help="listen on this Unix socket instead")
    serve.add_argument("--api-key-file", type=Path, help="override server.api_key_file")
    serve.add_argument("--bundle", type=Path, help="override model.bundle")
    serve.add_argument("--scene", help="with --sim: override kiosk.sim.scene (live, print, ...)")
    serve.add_argument("--ambient", help="with --sim: override kiosk.sim.ambient")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    check = subparsers.add_parser(
        "check", help="run one liveness check against a running daemon", epilog=_CHECK_EPILOG,
        formatter_class=fmt)
    _client_arguments(check)
    check.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    check.add_argument("--depth-png", type=Path, help="also save the depth map PNG here")
    check.set_defaults(func=_check)

    sim = subparsers.add_parser(
        "sim", help="change what the simulated kiosk's camera sees (a running serve --sim)",
        epilog=_SIM_EPILOG, formatter_class=fmt)
    _client_arguments(sim)
    sim.add_argument("--scene", required=True, help="live | print | replay | mask | a preset")
    sim.add_argument("--ambient", help="ambient scenario (office, dark_room, sunlight, ...)")
    sim.add_argument("--seed", type=int, help="subject / scene seed")
    sim.set_defaults(func=_sim)


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8787",
                        help="daemon address: http://host:port or unix:/path")
    parser.add_argument("--api-key-file", type=Path, default=Path("/etc/flashfas-edge/api-key"))
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")


def _serve(args: argparse.Namespace) -> int:
    from flashfas_edge.api.auth import ApiKeyFileError
    from flashfas_edge.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
    from flashfas_edge.daemon.sd_notify import SystemdNotifier
    from flashfas_edge.daemon.server import configure_logging, run_daemon
    from flashfas_edge.inference.backend import BackendError
    from flashfas_edge.inference.bundle import BundleError

    configure_logging(args.log_level)
    config_path = args.config
    if config_path is None and DEFAULT_CONFIG_PATH.is_file():
        config_path = DEFAULT_CONFIG_PATH
    server: dict[str, object] = {}
    for key in ("host", "port", "unix_socket", "api_key_file"):
        value = getattr(args, key)
        if value is not None:
            server[key] = str(value) if isinstance(value, Path) else value
    overrides: dict[str, dict[str, object]] = {"server": server} if server else {}
    if args.bundle is not None:
        overrides["model"] = {"bundle": str(args.bundle)}
    sim_scene = {k: v for k, v in (("scene", args.scene), ("ambient", args.ambient)) if v}
    if sim_scene:
        from flashfas_edge.kiosk.sim_scene import scene_error

        problem = "--scene/--ambient need --sim" if not args.sim else scene_error(
            args.scene or "live", args.ambient, replay_ok=False)
        if problem:
            print(f"flashfas-edge serve: {problem}", file=sys.stderr)
            return EX_CONFIG
    try:
        config = load_config(config_path, sim=args.sim, overrides=overrides)
        if sim_scene:
            config = _with_sim_scene(config, sim_scene)
        if config.sim and not config.daemon.server.api_key_file.exists():
            config = _with_throwaway_key(config)
        # The only place the daemon reads its environment: what systemd hands a notify service.
        notifier = SystemdNotifier.from_environment(os.environ)
        return run_daemon(config, notifier, log_level=args.log_level)
    except (ConfigError, ApiKeyFileError, BundleError, BackendError) as exc:
        print(f"flashfas-edge serve: {exc}", file=sys.stderr)
        return EX_CONFIG


def _with_sim_scene(config, scene: dict[str, str]):  # type: ignore[no-untyped-def]
    """The config with kiosk.sim.scene / ambient replaced (the rest of the sim table kept)."""
    import dataclasses

    kiosk = config.daemon.kiosk
    sim = kiosk.sim.model_copy(update=scene)
    daemon = config.daemon.model_copy(update={"kiosk": kiosk.model_copy(update={"sim": sim})})
    return dataclasses.replace(config, daemon=daemon)


def _with_throwaway_key(config):  # type: ignore[no-untyped-def]
    """Simulated kiosk only, no key file yet: a fresh random key in a private temp file, so that
    ``serve --sim`` works on a laptop. A real kiosk never gets here (exit 78 without a key)."""
    import dataclasses
    import secrets
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="flashfas-edge-sim-"))
    key_path = directory / "api-key"
    key_path.write_text(secrets.token_hex(32) + "\n")
    key_path.chmod(0o600)
    print(f"flashfas-edge serve: no API key file at {config.daemon.server.api_key_file}; "
          f"this simulated kiosk uses a fresh key in {key_path}", file=sys.stderr)
    server = config.daemon.server.model_copy(update={"api_key_file": key_path})
    daemon = config.daemon.model_copy(update={"server": server})
    return dataclasses.replace(config, daemon=daemon)


def _check(args: argparse.Namespace) -> int:
    import base64

    from flashfas_edge.api.client import ApiClientError, LivenessClient, read_key_file

    try:
        key = read_key_file(args.api_key_file)
        with LivenessClient(args.url, key, timeout_s=args.timeout) as client:
            answer = client.check(want_depth=args.depth_png is not None)
    except ApiClientError as exc:
        if args.json:
            print(json.dumps({"error": {"status": exc.status, "code": exc.code,
                                        "message": exc.message}}))
        else:
            print(f"check failed: {_client_error(exc)}", file=sys.stderr)
        return 2
    if args.depth_png is not None and answer.get("depth_png_base64"):
        args.depth_png.write_bytes(base64.b64decode(answer["depth_png_base64"]))
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    else:
        score = answer.get("score")
        shown = "n/a" if score is None else f"{score:.3f}"
        print(f"verdict   {answer['verdict'].upper()}  ({answer['reason']})")
        print(f"score     {shown}  (threshold {answer['threshold']:.3f})")
        if answer.get("type_probs"):
            print("type      " + "  ".join(f"{k} {v:.2f}" for k, v in answer["type_probs"].items()))
        total = answer.get("timings_ms", {}).get("total")
        stages = "  ".join(f"{k} {v:.0f}" for k, v in answer.get("timings_ms", {}).items()
                           if k != "total")
        print(f"timings   {stages}" + (f"  | total {total:.0f} ms" if total is not None else ""))
        print(f"check_id  {answer['check_id']}")
    return 0 if answer.get("verdict") == "live" else 1


def _client_error(exc) -> str:  # type: ignore[no-untyped-def]
    """``code: message``, with the HTTP status where the daemon answered (0: it did not)."""
    status = f" (HTTP {exc.status})" if exc.status else ""
    return f"{exc.code}: {exc.message}{status}"


def _sim(args: argparse.Namespace) -> int:
    from flashfas_edge.api.client import ApiClientError, LivenessClient, read_key_file

    try:
        key = read_key_file(args.api_key_file)
        with LivenessClient(args.url, key, timeout_s=args.timeout) as client:
            shown = client.set_sim_scene(args.scene, args.ambient, seed=args.seed)
    except ApiClientError as exc:
        print(f"flashfas-edge sim: {_client_error(exc)}", file=sys.stderr)
        return 2
    print(f"scene {shown['scene']}, ambient {shown['ambient']}, seed {shown['seed']}")
    return 0

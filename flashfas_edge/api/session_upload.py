"""Strict validation of a session uploaded to ``POST /v1/evaluate/recorded``.

The body is one session in the dataset format (read by ``flashfas_edge.data``). Whatever the
reader accepts is checked again here against the shapes, dtypes and ranges the pipeline relies on,
so a malformed upload is a 422 naming the field — never a crash or a verdict.
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np

from flashfas_edge.api.errors import InvalidUpload
from flashfas_edge.data.session import LABELS, Session
from flashfas_edge.flash_levels import N0_MAX, N0_MIN

MAX_FRAMES = 64
MAX_SIDE_PX = 2048
MIN_SIDE_PX = 32


def _fail(field: str, message: str) -> InvalidUpload:
    return InvalidUpload(f"invalid session: {field}: {message}",
                         details=[{"field": field, "msg": message}])


def _array(session: Session, name: str, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
    value = getattr(session, name)
    if not isinstance(value, np.ndarray):
        raise _fail(name, f"must be an array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise _fail(name, f"dtype must be {np.dtype(dtype)}, got {value.dtype}")
    if value.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=False)
    ):
        shown = tuple("*" if s is None else s for s in shape)
        raise _fail(name, f"shape must be {shown}, got {value.shape}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise _fail(name, "holds NaN or infinity")
    return value


def validate_session(session: Session) -> Session:
    """Raise :class:`InvalidUpload` naming the first field that breaks the contract."""
    frames = _array(session, "frames", np.uint8, (None, None, None, 3))
    t, h, w, _ = frames.shape
    if not 1 <= t <= MAX_FRAMES:
        raise _fail("frames", f"1..{MAX_FRAMES} frames expected, got {t}")
    if not (MIN_SIDE_PX <= h <= MAX_SIDE_PX and MIN_SIDE_PX <= w <= MAX_SIDE_PX):
        raise _fail("frames", f"frame size {w}x{h} outside {MIN_SIDE_PX}..{MAX_SIDE_PX} px")
    times = _array(session, "frame_times_us", np.int64, (t,))
    if t > 1 and not np.all(np.diff(times) > 0):
        raise _fail("frame_times_us", "must increase strictly")
    rgb = _array(session, "flash_rgb", np.float32, (None, 3))
    n0 = rgb.shape[0]
    if not N0_MIN <= n0 <= N0_MAX:
        raise _fail("flash_rgb", f"N0 must be {N0_MIN}..{N0_MAX} flash states, got {n0}")
    intensity = _array(session, "flash_intensity", np.float32, (n0,))
    for name, values in (("flash_rgb", rgb), ("flash_intensity", intensity)):
        if np.any(values < 0) or np.any(values > 1):
            raise _fail(name, "values must lie in [0, 1]")
    onsets = _array(session, "flash_onsets_us", np.int64, (n0,))
    if not np.all(np.diff(onsets) > 0):
        raise _fail("flash_onsets_us", "must increase strictly")
    order = _array(session, "order", np.int64, (n0,))
    if sorted(order.tolist()) != list(range(n0)):
        raise _fail("order", f"must be a permutation of 0..{n0 - 1}")
    for name in ("exposure_us", "readout_us", "state_duration_us", "latency_us"):
        value = getattr(session, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise _fail(name, "must be an integer")
        if value < 0 or value > 10_000_000 or (name in {"exposure_us", "state_duration_us"}
                                               and value == 0):
            raise _fail(name, f"out of range: {value}")
    if session.landmarks is not None:
        _array(session, "landmarks", np.float32, (t, 5, 2))
    if not isinstance(session.nonce, str) or len(session.nonce) > 128:
        raise _fail("nonce", "must be a string of at most 128 characters")
    if session.attack_type is not None and session.attack_type not in LABELS:
        raise _fail("attack_type", f"must be one of {LABELS}")
    return session


SESSION_MEDIA_TYPES = frozenset({"application/octet-stream", "application/x-npz",
                                 "application/zip"})
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # zip-bomb guard: what the members may expand to
MAX_MEMBERS = 64
_MEMBER_NAME = re.compile(r"^s0000/[a-z_]{1,32}\.npy$")


# zipfile, zlib and numpy's header parser fail on crafted bytes with many exception types
# (BadZipFile, zlib.error, RuntimeError for an encrypted member, NotImplementedError for an
# unknown compression method, SyntaxError from a broken .npy header, EOFError, ...): every one of
# them is the upload's fault, so every Exception here is a 422 — never a 500.
_ADDRESS = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _why(exc: BaseException) -> str:
    """An exception as a short reason for the caller: no object addresses, bounded length."""
    text = _ADDRESS.sub("the upload", str(exc)) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


def _check_container(raw: bytes) -> None:
    """Look inside the zip before numpy does: one session, known member names, bounded size."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: see above
        raise InvalidUpload(f"not a session file (an .npz zip): {_why(exc)}") from exc
    if not members or len(members) > MAX_MEMBERS:
        raise _fail("body", f"expected 1..{MAX_MEMBERS} arrays, got {len(members)}")
    for member in members:
        if member.flag_bits & 0x1:
            raise _fail("body", f"member {member.filename[:80]!r} is encrypted")
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _fail("body", f"member {member.filename[:80]!r} uses compression method "
                                f"{member.compress_type} (stored or deflate expected)")
        if not _MEMBER_NAME.match(member.filename):
            raise _fail("body", f"unexpected member {member.filename[:80]!r} (one session, "
                                "written by write_session_file, is expected)")
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise _fail("body", f"the arrays would unpack to {unpacked} bytes "
                            f"(limit {MAX_UNPACKED_BYTES})")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for member in members:
                _check_member_dtype(archive, member)
    except InvalidUpload:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted bytes
        raise InvalidUpload(f"not a readable session file: {_why(exc)}") from exc


# The upload contract: each array's stored dtype (the dataset reader would silently convert).
_MEMBER_DTYPE_KINDS: dict[str, tuple[str, ...]] = {
    "frames": ("|u1",), "frame_times_us": ("<i8",), "flash_rgb": ("<f4",),
    "flash_intensity": ("<f4",), "flash_onsets_us": ("<i8",), "order": ("<i8",),
    "landmarks": ("<f4",), "depth": ("<f4",), "exposure_us": ("<i8",), "readout_us": ("<i8",),
    "state_duration_us": ("<i8",), "latency_us": ("<i8",), "nonce": ("<U",),
    "attack_type": ("<U",), "meta_json": ("<U",),
}


def _check_member_dtype(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    field = member.filename.split("/", 1)[1].removesuffix(".npy")
    allowed = _MEMBER_DTYPE_KINDS.get(field)
    if allowed is None:
        raise _fail(field, "is not a field of the dataset format")
    try:
        with archive.open(member) as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes
        raise _fail(field, f"is not a readable .npy array ({_why(exc)})") from exc
    if dtype.hasobject or not any(dtype.str.startswith(prefix) for prefix in allowed):
        raise _fail(field, f"dtype must be {allowed[0]}, got {dtype.str}")
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if declared > member.file_size:
        raise _fail(field, f"declares {declared} bytes of data but holds {member.file_size}")


def decode_uploaded_session(raw: bytes, media_type: str) -> Session:
    """Bytes of one session file in the dataset format (``write_session_file``) → a validated
    :class:`Session`. Every failure on these untrusted bytes is an :class:`InvalidUpload`."""
    from flashfas_edge.data.dataset_format import DatasetFormatError, read_shard

    if not raw:
        raise _fail("body", "the upload is empty")
    _check_container(raw)
    try:
        sessions = read_shard(io.BytesIO(raw))  # type: ignore[arg-type]  # np.load takes files
    except DatasetFormatError as exc:
        raise InvalidUpload(f"not a session in the dataset format: "
                            f"{_ADDRESS.sub('the upload', str(exc))[:300]}") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure on untrusted bytes is a 422
        raise InvalidUpload(f"corrupt session upload ({_why(exc)})") from exc
    if len(sessions) != 1:
        raise _fail("body", f"expected one session, got {len(sessions)}")
    return validate_session(sessions[0])

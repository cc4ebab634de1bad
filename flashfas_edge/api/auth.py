"""API key authentication: the key comes from a root-owned file, compared in constant time.

The key file is checked when the daemon starts: it must be owned by root (or by the daemon's own
user, for development), must not be writable by group or others, and must not be readable by
others. A key that others could read or swap is not a secret, so the daemon refuses to start.
"""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

MIN_KEY_LENGTH = 16  # characters; `install-systemd` writes 64 hex characters


class ApiKeyFileError(RuntimeError):
    """The API key file is missing, unsafe (ownership/permissions) or holds no usable key."""


def load_api_key(path: Path, *, allowed_owner_uids: tuple[int, ...] | None = None) -> str:
    """Read the key after checking who may read or change the file (see module docstring)."""
    owners = allowed_owner_uids if allowed_owner_uids is not None else (0, os.geteuid())
    try:
        # O_NOFOLLOW: a symlink could point the daemon at a file with other permissions.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ApiKeyFileError(f"cannot open the API key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ApiKeyFileError(f"the API key file {path} is not a regular file")
        if info.st_uid not in owners:
            raise ApiKeyFileError(
                f"the API key file {path} is owned by uid {info.st_uid}; it must be owned by root"
                f" (uids allowed: {sorted(set(owners))})"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & (stat.S_IRWXO | stat.S_IWGRP):
            raise ApiKeyFileError(
                f"the API key file {path} has mode {mode:04o}; others must have no access and the"
                " group no write access (use 0600 or 0640)"
            )
        raw = os.read(fd, 4097)
    finally:
        os.close(fd)
    if len(raw) > 4096:
        raise ApiKeyFileError(f"the API key file {path} is larger than 4 KiB")
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ApiKeyFileError(f"the API key file {path} is not ASCII text") from exc
    if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
        raise ApiKeyFileError(
            f"the API key in {path} must be one token of at least {MIN_KEY_LENGTH} characters"
        )
    return key


def key_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a key was right."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    if x_api_key:
        return x_api_key
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return None

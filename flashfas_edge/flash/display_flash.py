"""The display flash, browser side: a FlashDriver whose surface is a page in the kiosk's browser.

The kiosk display belongs to the kiosk app (a full-screen browser). The app includes the flash
client the daemon serves (``display_client.js``, ``GET /v1/flash/client.js``); the client opens a
WebSocket on the daemon's loopback API (``/v1/flash/ws``), authenticates with its first message
and from then on paints what this driver sends. The API hands each authenticated connection to
:meth:`DisplayFlash.attach` as a :class:`ClientChannel`; this module never imports the API.

Protocol (JSON text messages, version 1; the client's times are ``performance.now()`` ms):

- client → daemon ``hello {key, version}`` (checked by the API, then by :meth:`attach`);
  daemon → client ``welcome {version}``.
- ``ping {id}`` → ``pong {id, t}``: the client's clock at the ping's arrival. Round trips map the
  client's clock onto the host's monotonic µs (``remote_clock.py``, NTP-style from the fastest
  round trips); a burst at connection and one every ``sync_interval_s`` while idle.
- ``play {id, start, states: [{rgb: [r, g, b] 8-bit sRGB, ms}]}``: the client paints each state
  full-screen on an animation frame, the first at ``start`` (its clock), each for at least its
  ``ms``, then returns to the kiosk app's screen. For every state, and for the return (slot n0,
  ``rgb`` null), it sends ``shown {id, slot, t, rgb}``: ``t`` is the ``requestAnimationFrame``
  timestamp of the frame after the one that painted it (when that frame reached the screen).
  ``refused {id, reason}`` when it will not play the sequence; ``abort {id}`` from the daemon
  ends a sequence early.

Fail closed: no client connected, a client that disconnects or goes silent mid-sequence, reports
that are missing, out of order, of another colour, non-monotonic or late (``presentation.py``) →
:class:`FlashError` → the check answers ``retry``. The client only ever paints sequences this
driver sends, and the driver only plays schedules the pipeline drew and checked against the
photosensitive limits (``flash/safety.py``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from importlib import resources
from typing import Any, Protocol

from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash.base import FlashError, FlashPlayback, FlashSchedule, OnsetGrid
from flashfas_edge.flash.presentation import (
    DEFAULT_LIMITS,
    PresentationLimits,
    PresentedListener,
    playback_from_presentations,
    srgb_bytes,
)
from flashfas_edge.flash.remote_clock import ClockKeeper, RemoteClock

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
CLIENT_SCRIPT = "display_client.js"
SURFACE = "browser flash client"
NO_CLIENT = ("no browser flash client is connected: the kiosk page must load "
             "/v1/flash/client.js and connect with the API key (docs/DISPLAY_FLASH.md)")


def client_script() -> str:
    """The flash client's JavaScript, as the daemon serves it."""
    return resources.files(__package__).joinpath(CLIENT_SCRIPT).read_text(encoding="utf-8")


class ClientChannel(Protocol):
    """One client connection, as the API's WebSocket endpoint provides it."""

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message to the client; thread-safe, never blocks (dropped once closed)."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection; thread-safe."""


class FlashClientHub(Protocol):
    """What the API's WebSocket endpoint needs of the display driver."""

    def attach(self, channel: ClientChannel, hello: dict[str, Any]) -> ClientSession: ...


class ClientSession:
    """One connected client: its inbox, its clock, whether it is still there. The API delivers
    messages from the event loop; the driver reads them on the check worker."""

    def __init__(self, channel: ClientChannel, name: str) -> None:
        self.channel = channel
        self.name = name
        self.clock = RemoteClock(window=32)
        self._inbox: deque[tuple[dict[str, Any], int]] = deque(maxlen=256)
        self._cond = threading.Condition()
        self._connected = True

    def deliver(self, message: dict[str, Any], received_us: int) -> None:
        """A message from the client, stamped when the API received it."""
        with self._cond:
            self._inbox.append((message, received_us))
            self._cond.notify_all()

    def detach(self) -> None:
        """The connection is gone."""
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        return self._connected

    def send(self, message: dict[str, Any]) -> None:
        if not self._connected:
            raise FlashError(f"the {SURFACE} disconnected")
        self.channel.send(message)

    def next_message(self, deadline_us: int) -> tuple[dict[str, Any], int] | None:
        """The next message and when it arrived; None at the deadline; FlashError once the
        client is gone and nothing is left to read."""
        with self._cond:
            while not self._inbox:
                if not self._connected:
                    raise FlashError(f"the {SURFACE} disconnected")
                left_s = (deadline_us - monotonic_us()) / 1e6
                if left_s <= 0:
                    return None
                self._cond.wait(left_s)
            return self._inbox.popleft()

    def drop_pending(self) -> None:
        with self._cond:
            self._inbox.clear()


def _client_time_us(message: dict[str, Any], key: str) -> int:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FlashError(f"the {SURFACE} sent {message.get('type')!r} without a valid {key!r}")
    return round(value * 1000)


class DisplayFlash:
    def __init__(self, *, start_lead_us: int = 60_000, ping_timeout_s: float = 0.25,
                 handshake_pings: int = 12, sync_interval_s: float = 1.0,
                 limits: PresentationLimits = DEFAULT_LIMITS,
                 on_presented: PresentedListener | None = None) -> None:
        self.start_lead_us = start_lead_us  # the play message's time to reach the client
        self.ping_timeout_s = ping_timeout_s
        self.handshake_pings = handshake_pings
        self.sync_interval_s = sync_interval_s
        self.limits = limits
        self.on_presented = on_presented
        self._client: ClientSession | None = None
        self._clients = 0
        self._client_lock = threading.Lock()  # guards _client (event loop vs. worker)
        self._lock = threading.RLock()  # one conversation with the client at a time
        self._serial = 0  # ping and play ids
        self._started = False
        self._clock_keeper = ClockKeeper("display-flash-clock", sync_interval_s, self._lock,
                                         self._idle_sample)

    # --- the API's side -------------------------------------------------------------------
    def attach(self, channel: ClientChannel, hello: dict[str, Any]) -> ClientSession:
        """A client authenticated (the API checked its key): it becomes the flash surface, and
        one connected before it is closed (a reloaded kiosk page reconnects before the old
        socket times out)."""
        version = hello.get("version")
        if version != PROTOCOL_VERSION:
            raise FlashError(f"the {SURFACE} speaks protocol version {version!r}; this daemon "
                             f"speaks {PROTOCOL_VERSION} (load /v1/flash/client.js from this "
                             "daemon)")
        with self._client_lock:
            self._clients += 1
            session = ClientSession(channel, f"client {self._clients}")
            previous, self._client = self._client, session
        if previous is not None:
            previous.detach()
            previous.channel.close(4000, "replaced by a newer flash client")
        channel.send({"type": "welcome", "version": PROTOCOL_VERSION})
        log.info("display flash: %s connected", session.name)
        return session

    # --- FlashDriver ----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self._clock_keeper.start()

    def stop(self) -> None:
        self._clock_keeper.stop()
        with self._lock:
            self._started = False
            with self._client_lock:
                client, self._client = self._client, None
            if client is not None:
                client.detach()
                client.channel.close(1001, "the daemon is stopping")

    def self_test(self) -> None:
        with self._lock:
            client = self._require_client()
            if client.clock.samples < 3:
                self._synchronise(client)
            if not self._ping(client):
                raise FlashError(f"the {SURFACE} does not answer (no pong within "
                                 f"{self.ping_timeout_s:.2f} s)")

    def supports_colour(self) -> bool:
        return True

    def holds_timing(self) -> bool:
        return False  # states change at the display's vsync, not at a commanded time

    def idle_state(self) -> None:
        return None  # the overlay goes: the kiosk app's own screen shows between sequences

    def play(self, schedule: FlashSchedule, timeout_s: float,
             grid: OnsetGrid | None = None) -> FlashPlayback:
        """Play at the display's pace; ``grid`` is not used (:meth:`holds_timing` is False)."""
        deadline_us = monotonic_us() + int(timeout_s * 1e6)
        with self._lock:
            client = self._require_client()
            if client.clock.samples < 3:
                self._synchronise(client)
            play_id = self._next_id()
            colours = [srgb_bytes(state) for state in schedule.states]
            sent_us = monotonic_us()
            start_us = sent_us + self.start_lead_us
            client.send({
                "type": "play", "id": play_id,
                "start": client.clock.to_remote_us(start_us) / 1000,
                "states": [{"rgb": list(rgb), "ms": schedule.duration_of(k) / 1000}
                           for k, rgb in enumerate(colours)],
            })
            try:
                onsets, end_us, reported_by_us = self._presentations(
                    client, play_id, schedule, colours, deadline_us)
                return playback_from_presentations(
                    schedule, onsets, end_us, sent_us=sent_us, requested_start_us=start_us,
                    reported_by_us=reported_by_us, surface=SURFACE, limits=self.limits)
            except FlashError:
                if client.connected:
                    client.channel.send({"type": "abort", "id": play_id})
                raise

    # --- the conversation -----------------------------------------------------------------
    def _require_client(self) -> ClientSession:
        if not self._started:
            raise FlashError("the display flash is not started")
        with self._client_lock:
            client = self._client
        if client is None or not client.connected:
            raise FlashError(NO_CLIENT)
        return client

    def _next_id(self) -> int:
        self._serial += 1
        return self._serial

    def _presentations(self, client: ClientSession, play_id: int, schedule: FlashSchedule,
                       colours: list[tuple[int, int, int]], deadline_us: int,
                       ) -> tuple[list[int], int, int]:
        """The host times of the reported onsets, of the return to idle and of the last report."""
        onsets: list[int] = []
        while True:
            got = client.next_message(deadline_us)
            if got is None:
                raise FlashError(f"the {SURFACE} reported {len(onsets)} of {schedule.n0} states "
                                 "before the deadline")
            message, received_us = got
            if message.get("id") != play_id:
                continue  # a late pong, a report of an aborted sequence
            kind = message.get("type")
            if kind == "refused":
                raise FlashError(f"the {SURFACE} refused the sequence: "
                                 f"{str(message.get('reason'))[:200]}")
            if kind != "shown":
                continue
            slot = message.get("slot")
            if slot != len(onsets):
                raise FlashError(f"the {SURFACE} reported slot {slot!r} where slot "
                                 f"{len(onsets)} was due")
            t_us = client.clock.to_host_us(_client_time_us(message, "t"))
            painted = message.get("rgb")
            if len(onsets) < schedule.n0:
                expected = list(colours[len(onsets)])
                if painted != expected:
                    raise FlashError(f"the {SURFACE} painted {painted!r} for state {slot}, "
                                     f"not {expected}")
                if self.on_presented is not None:
                    self.on_presented(schedule.states[len(onsets)], t_us)
                onsets.append(t_us)
                continue
            if painted is not None:
                raise FlashError(f"the {SURFACE} reported {painted!r} as its idle screen")
            if self.on_presented is not None:
                self.on_presented(None, t_us)
            return onsets, t_us, received_us

    def _ping(self, client: ClientSession) -> bool:
        """One round trip into the clock; False when no answer came in time."""
        ping_id = self._next_id()
        sent_us = monotonic_us()
        client.send({"type": "ping", "id": ping_id})
        deadline_us = sent_us + int(self.ping_timeout_s * 1e6)
        while True:
            got = client.next_message(deadline_us)
            if got is None:
                return False
            message, received_us = got
            if message.get("type") == "pong" and message.get("id") == ping_id:
                client.clock.add(sent_us, received_us, _client_time_us(message, "t"))
                return True

    def _synchronise(self, client: ClientSession) -> None:
        client.drop_pending()
        for _ in range(self.handshake_pings):
            self._ping(client)
        if client.clock.samples < 3:
            raise FlashError(f"the {SURFACE} answered {client.clock.samples} of "
                             f"{self.handshake_pings} clock pings")

    def _idle_sample(self) -> None:
        with self._client_lock:
            client = self._client
        if client is None or not client.connected:
            return
        if client.clock.samples < 3:
            self._synchronise(client)
        else:
            self._ping(client)

/* FlashFAS Edge flash client, protocol 1 (served by the daemon at GET /v1/flash/client.js).
 *
 * The kiosk app includes this script and calls
 *   FlashfasFlash.connect({ daemon: "http://127.0.0.1:8787", apiKey: "<the API key>" });
 * It keeps a WebSocket open to the daemon (reconnecting after a loss) and, during a check, paints
 * each flash state the daemon sends full-screen over the app, then removes its overlay. For every
 * state it reports the requestAnimationFrame timestamp of the frame after the one that painted it
 * (when that frame reached the screen), on performance.now()'s clock; the daemon maps that clock
 * onto its own from ping round trips. Plain JavaScript, no build step, no dependencies.
 * The protocol is described in flashfas_edge/flash/display_flash.py and docs/DISPLAY_FLASH.md.
 */
(function (global) {
  "use strict";

  const PROTOCOL_VERSION = 1;
  // The client's own bounds on what it paints (the daemon's sequences are far inside them and
  // were checked against the photosensitive limits before they were sent): a runaway sequence
  // is refused, never shown.
  const MAX_STATES = 12;
  const MIN_STATE_MS = 5;
  const MAX_STATE_MS = 500;
  const MAX_SEQUENCE_MS = 2000;
  const FALLBACK_FRAME_MS = 1000 / 60;

  function sequenceProblem(message) {
    const states = message.states;
    if (!Array.isArray(states) || states.length < 1 || states.length > MAX_STATES) {
      return `a sequence has 1 to ${MAX_STATES} states`;
    }
    let total = 0;
    for (const state of states) {
      const rgb = state && state.rgb;
      if (!Array.isArray(rgb) || rgb.length !== 3
          || !rgb.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) {
        return "each state needs rgb: three integers 0..255";
      }
      if (typeof state.ms !== "number" || !(state.ms >= MIN_STATE_MS && state.ms <= MAX_STATE_MS)) {
        return `each state lasts ${MIN_STATE_MS} to ${MAX_STATE_MS} ms`;
      }
      total += state.ms;
    }
    if (total > MAX_SEQUENCE_MS) return `a sequence lasts at most ${MAX_SEQUENCE_MS} ms`;
    if (typeof message.start !== "number" || !Number.isFinite(message.start)) {
      return "start must be a time on performance.now()'s clock";
    }
    return null;
  }

  function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  function connect(options) {
    const daemon = (options && options.daemon) || "http://127.0.0.1:8787";
    const apiKey = options && options.apiKey;
    const onStatus = (options && options.onStatus) || (() => {});
    if (!apiKey) throw new Error("FlashfasFlash.connect needs the daemon's apiKey");
    const url = daemon.replace(/^http/, "ws").replace(/\/$/, "") + "/v1/flash/ws";
    let socket = null;
    let closedByApp = false;
    let retryMs = 500;
    let overlay = null;
    let current = null; // the sequence being played

    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    }

    function paint(rgb) {
      if (!overlay) {
        overlay = document.createElement("div");
        overlay.style.cssText = "position:fixed;left:0;top:0;width:100vw;height:100vh;margin:0;"
          + "z-index:2147483647;cursor:none;pointer-events:none";
        document.documentElement.appendChild(overlay);
      }
      overlay.style.backgroundColor = `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
    }

    function hide() {
      if (overlay) overlay.remove();
      overlay = null;
    }

    function stop() {
      current = null;
      hide();
    }

    function play(message) {
      const problem = sequenceProblem(message);
      if (problem) {
        send({ type: "refused", id: message.id, reason: problem });
        return;
      }
      stop();
      const run = {
        id: message.id, states: message.states, start: message.start,
        slot: -1, pending: null, shownAt: null, lastTs: null, periods: [],
      };
      current = run;
      const frame = (ts) => {
        if (current !== run) return;
        if (run.lastTs !== null) {
          run.periods.push(ts - run.lastTs);
          if (run.periods.length > 8) run.periods.shift();
        }
        run.lastTs = ts;
        const period = run.periods.length ? median(run.periods) : FALLBACK_FRAME_MS;
        if (run.pending !== null) {
          // the frame painted in the previous callback reaches the screen with this one
          const slot = run.pending;
          run.pending = null;
          run.shownAt = ts;
          const rgb = slot < run.states.length ? run.states[slot].rgb : null;
          send({ type: "shown", id: run.id, slot: slot, t: ts, rgb: rgb });
          if (slot === run.states.length) {
            current = null;
            return;
          }
        }
        const next = run.slot + 1;
        // the next frame shows at about ts + period: paint the next state in the frame that
        // shows it nearest its start (slot 0) or no earlier than its predecessor's end
        const due = next === 0 ? run.start - period / 2
          : run.shownAt + run.states[run.slot].ms - 0.5;
        if (run.pending === null && ts + period >= due) {
          if (next < run.states.length) paint(run.states[next].rgb);
          else hide();
          run.slot = next;
          run.pending = next;
        }
        requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
    }

    function onMessage(event) {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (message.type === "ping") {
        send({ type: "pong", id: message.id, t: performance.now() });
      } else if (message.type === "play") {
        play(message);
      } else if (message.type === "abort") {
        if (current && current.id === message.id) stop();
      } else if (message.type === "welcome") {
        retryMs = 500;
        onStatus("connected");
      }
    }

    function open() {
      socket = new WebSocket(url);
      socket.onopen = () => send({ type: "hello", key: apiKey, version: PROTOCOL_VERSION });
      socket.onmessage = onMessage;
      socket.onclose = (event) => {
        stop(); // never leave a flash state on the screen
        socket = null;
        onStatus(`disconnected (${event.code} ${event.reason})`);
        if (!closedByApp) {
          setTimeout(open, retryMs);
          retryMs = Math.min(retryMs * 2, 5000);
        }
      };
    }

    open();
    return {
      close() {
        closedByApp = true;
        stop();
        if (socket) socket.close(1000, "closed by the kiosk app");
      },
    };
  }

  global.FlashfasFlash = Object.freeze({ connect, PROTOCOL_VERSION });
})(typeof window !== "undefined" ? window : globalThis);

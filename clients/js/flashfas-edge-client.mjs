// FlashFAS Edge: a dependency-free client of the daemon's local REST API (docs/API.md and
// docs/openapi.json). Plain ES module; runs in a kiosk browser and in Node >= 18 (global fetch).
//
//   import { FlashfasEdgeClient, mayOpenDoor } from "./flashfas-edge-client.mjs";
//   const edge = new FlashfasEdgeClient({ apiKey });            // http://127.0.0.1:8787
//   const answer = await edge.check({ clientRef: "door-3:4711" });
//   if (mayOpenDoor(answer)) openDoor(); else showRetryOrDeny(answer.reason);
//
// Only a check answer with verdict "live" may open a door. Every error (FlashfasEdgeError) and
// every "retry" keeps it closed; an evaluation of an uploaded recording never opens it.

/** Reasons that come with verdict "retry": ask the person to try again (docs/API.md). */
export const RETRY_REASONS = Object.freeze([
  "score_uncertain", "challenge_unclear", "challenge_lockout", "no_face", "multiple_faces",
  "face_too_small",
  "face_too_large", "motion",
  "underexposed", "overexposed", "low_flash_snr", "no_clean_frame", "flash_unsafe",
  "stage_timeout",
  "internal_error",
]);

/** The daemon answered with an error status (or could not be reached: status 0). */
export class FlashfasEdgeError extends Error {
  constructor(status, code, message, retryAfterS = null) {
    super(`${status} ${code}: ${message}`);
    this.name = "FlashfasEdgeError";
    this.status = status;          // HTTP status; 0 = unreachable or timed out
    this.code = code;              // error.code, e.g. "queue_full", "camera_unavailable"
    this.retryAfterS = retryAfterS; // seconds, from Retry-After (429, 503), else null
  }
}

/** True only for a check answer that says live. Never true for an error or an evaluation. */
export function mayOpenDoor(answer) {
  return answer != null && typeof answer === "object" && answer.verdict === "live"
    && typeof answer.check_id === "string" && answer.access_decision === undefined;
}

export class FlashfasEdgeClient {
  constructor({ baseUrl = "http://127.0.0.1:8787", apiKey, timeoutMs = 10000,
                fetchImpl = globalThis.fetch } = {}) {
    if (!apiKey) throw new TypeError("apiKey is required (the daemon's key file)");
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
    this.fetch = fetchImpl;
  }

  async #call(method, path, { body, contentType, auth = true, okStatuses = [200] } = {}) {
    const headers = {};
    if (auth) headers.Authorization = `Bearer ${this.apiKey}`;
    if (contentType) headers["Content-Type"] = contentType;
    let response;
    try {
      response = await this.fetch(this.baseUrl + path, {
        method, headers, body, signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new FlashfasEdgeError(0, "unreachable", `${method} ${path}: ${err.message}`);
    }
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
    if (okStatuses.includes(response.status)) return parsed;
    const retryAfter = response.headers.get("retry-after");
    const error = (parsed && parsed.error) || {};
    throw new FlashfasEdgeError(response.status, error.code || `http_${response.status}`,
      error.message || text.slice(0, 200), retryAfter === null ? null : Number(retryAfter));
  }

  /** GET /v1/health (no key): {status, ready, reason}; a 503 is an answer here, not an error. */
  health() { return this.#call("GET", "/v1/health", { auth: false, okStatuses: [200, 503] }); }

  /** GET /v1/status: versions, model, calibration, camera, counters. */
  status() { return this.#call("GET", "/v1/status"); }

  /** POST /v1/liveness: one check on the kiosk's camera and flash. */
  check({ wantDepth = false, clientRef } = {}) {
    const body = { want_depth: wantDepth };
    if (clientRef !== undefined) body.client_ref = clientRef;
    return this.#call("POST", "/v1/liveness",
      { body: JSON.stringify(body), contentType: "application/json" });
  }

  /** POST /v1/evaluate/recorded: score a session file (an evaluation, never a door decision). */
  evaluateRecorded(bytes, mediaType = "application/x-npz") {
    return this.#call("POST", "/v1/evaluate/recorded", { body: bytes, contentType: mediaType });
  }
}

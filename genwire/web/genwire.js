// genwire.js: the browser client of genwire (SPEC §6). It is one ES module with no
// dependencies, served by `genwire serve` at /ui/genwire.js.
//
//   import { GenwireClient, EventHub, FollowList } from "/ui/genwire.js";
//   const client = new GenwireClient();                 // same origin; { apiKey } if set
//   const hub = new EventHub(client, { cursor: saved });
//   hub.addEventListener("event", (e) => render(e.detail));    // each event once, in order
//   hub.addEventListener("state", (e) => show(e.detail.state)); // live | unreachable | polling …
//   hub.watch(jobId); hub.start();
//
// EventHub behaves like the Python client's events() (genwire/client/_transports.py).
// It keeps one connection for every job the page can see (/api/events), read with
// fetch so that it can send the API key and Last-Event-ID. It resumes from its cursor
// after 1, 2, 4, 8, 16 s (±20 % jitter). A stream silent for twice the keepalive is
// dead. After 3 failures in a row it falls back to long-poll (/api/poll) on the same
// cursor, then to polling each watched job, and it tries SSE again after 60 s of
// working fallback. Every event is passed on once, in order: an event at or before
// the last one seen of its job is dropped, whichever transport brought it.
//
// A failure that no answer came with (a refused connection, a gateway's 502 or 504, a
// stream silent before its headers) may be the server's or only the stream's: a plain
// request (a probe, GET /api/poll?wait=0) tells which. When the probe is answered, the
// stream is blocked, which counts towards the fallback. When it is not, the server is
// unreachable: no fallback, a probe every second or so, and as soon as any request is
// answered again (the probe, or the page's own) the hub goes back to SSE at once.
//
// A 429 or 503 answer's Retry-After (seconds or an HTTP-date, SPEC §3) replaces the
// client's own pause, up to retryAfterCapS (30 s): the hub reconnects or polls again
// after it, and a GET, a cancel or a create (under its Idempotency-Key) is sent again
// after it; a call told to wait longer than the cap throws at once instead.

export const TERMINAL_TYPES = new Set(["job-completed", "job-failed", "job-cancelled"]);

/** An answer of 400 and above, from its problem+json body (RFC 9457). */
export class GenwireError extends Error {
  constructor(status, problem = {}, retryAfterS = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "GenwireError";
    this.status = status;
    this.code = problem.code || null;
    this.errors = problem.errors || [];
    this.retryAfterS = retryAfterS;
  }

  /** Whether trying again (or another transport) may do better. */
  get retryable() {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

/** The seconds a 429 or 503 answer asks to wait (Retry-After: delay-seconds or an
 * HTTP-date, RFC 9110 §10.2.3); null for another answer, or one that does not say. */
export function retryAfterS(response, now = Date.now()) {
  if (response.status !== 429 && response.status !== 503) return null;
  const value = (response.headers.get("Retry-After") || "").trim();
  if (/^\d+$/.test(value)) return Number(value);
  const moment = Date.parse(value);
  return Number.isNaN(moment) ? null : Math.max(0, (moment - now) / 1000);
}

/** A key for Idempotency-Key that also works outside secure contexts. */
export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Event ids are zero-padded decimals; compare them as numbers all the same. */
export function eventSeq(id) {
  const digits = String(id ?? "").replace(/\D/g, "");
  return digits ? BigInt(digits) : 0n;
}

/** The id of event number `seq`, as the server writes it. */
export function formatEventId(seq) {
  return seq.toString().padStart(16, "0");
}

const sleep = (ms, ...signals) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    for (const signal of signals) {
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    }
  });

/** Whether an answer came from the server itself: a gateway's 502 or 504 says that
 * the server behind it did not answer. */
const fromServer = (status) => status !== 502 && status !== 504;

/** base × 1, 2, 4, 8, 16 (capped), ±20 % jitter so that pages do not reconnect in step. */
export function backoffS(failures, baseS = 1) {
  if (failures <= 0) return 0;
  return baseS * Math.min(2 ** (failures - 1), 16) * (0.8 + Math.random() * 0.4);
}

/** The REST calls of SPEC §3, answering parsed JSON or throwing GenwireError. It
 * dispatches "contact" (detail: the time, in ms) whenever the server answers a call,
 * and keeps that time in `lastContact`. */
export class GenwireClient extends EventTarget {
  constructor({ baseUrl = "", apiKey = null, createRetryDelaysS = [1, 2, 4], retryAfterCapS = 30 } = {}) {
    super();
    this.lastContact = null; // Date.now() of the server's last answer
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.apiKey = apiKey;
    this.createRetryDelaysS = createRetryDelaysS;
    this.retryAfterCapS = retryAfterCapS;
  }

  url(path) {
    return /^https?:/.test(path) ? path : this.baseUrl + path;
  }

  /** Notes an answer of `status`; whether it came from the server itself. */
  noteAnswer(status, { quiet = false } = {}) {
    if (!fromServer(status)) return false;
    this.lastContact = Date.now();
    if (!quiet) this.dispatchEvent(new CustomEvent("contact", { detail: this.lastContact }));
    return true;
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    return headers;
  }

  /** A call; a GET or an idempotent call (`resend`) refused with a Retry-After of at
   * most the cap is sent again after it, 3 times at most. */
  async request(method, path, { resend = method === "GET", ...options } = {}) {
    for (let resent = 0; ; resent++) {
      try {
        return await this.requestOnce(method, path, options);
      } catch (error) {
        const waitS = error instanceof GenwireError ? error.retryAfterS : null;
        if (!resend || resent >= 3 || waitS === null || waitS > this.retryAfterCapS) throw error;
        await sleep(waitS * 1000, options.signal);
        if (options.signal?.aborted) throw error;
      }
    }
  }

  async requestOnce(method, path, { body, headers = {}, signal, params } = {}) {
    let target = this.url(path);
    if (params) {
      const query = new URLSearchParams(
        Object.entries(params).filter(([, value]) => value !== undefined && value !== null && value !== ""),
      );
      if ([...query].length) target += `?${query}`;
    }
    const init = { method, headers: this.headers(headers), signal, cache: "no-store" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(target, init);
    this.noteAnswer(response.status);
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text.slice(0, 200) };
    }
    if (!response.ok) throw new GenwireError(response.status, data || {}, retryAfterS(response));
    return data;
  }

  /** A create, retried after network errors, 5xx and 429 under one Idempotency-Key,
   * so a retry never makes a second job; after the answer's Retry-After when it names
   * one (a longer one than the cap throws at once), else after its own delays. */
  async create(path, body, idempotencyKey = newIdempotencyKey()) {
    const headers = { "Idempotency-Key": idempotencyKey };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce("POST", path, { body, headers });
      } catch (error) {
        const again = !(error instanceof GenwireError) || error.retryable;
        if (!again || attempt >= this.createRetryDelaysS.length) throw error;
        const waitS = error.retryAfterS ?? null;
        if (waitS !== null && waitS > this.retryAfterCapS) throw error;
        await sleep((waitS ?? this.createRetryDelaysS[attempt]) * 1000);
      }
    }
  }

  pipelines() {
    return this.request("GET", "/api/pipelines").then((answer) => answer.items);
  }
  submit(pipeline, input, { idempotencyKey, metadata, webhook, projectId } = {}) {
    const body = { pipeline, input };
    if (metadata) body.metadata = metadata;
    if (webhook) body.webhook = webhook;
    if (projectId) body.project_id = projectId;
    return this.create("/api/jobs", body, idempotencyKey);
  }
  getJob(jobId) {
    return this.request("GET", `/api/jobs/${encodeURIComponent(jobId)}`);
  }
  listJobs(params = {}) {
    return this.request("GET", "/api/jobs", { params });
  }
  cancel(jobId) {
    return this.request("POST", `/api/jobs/${encodeURIComponent(jobId)}/cancel`, { resend: true });
  }
  /** The job's events after `after`; waits up to `waitS` for one when there are none. */
  pollJob(jobId, after, waitS = 0, signal) {
    const params = { after, wait: waitS };
    return this.requestOnce("GET", `/api/jobs/${encodeURIComponent(jobId)}/poll`, { params, signal });
  }
  /** Every visible job's events after `after` (the cursor of /api/events). */
  pollAll(after, waitS = 0, signal) {
    return this.requestOnce("GET", "/api/poll", { params: { after, wait: waitS }, signal });
  }
  createProject(clips, { name, webhook, idempotencyKey } = {}) {
    const body = { clips };
    if (name) body.name = name;
    if (webhook) body.webhook = webhook;
    return this.create("/api/projects", body, idempotencyKey);
  }
  getProject(projectId) {
    return this.request("GET", `/api/projects/${encodeURIComponent(projectId)}`);
  }
  cancelProject(projectId) {
    return this.request("POST", `/api/projects/${encodeURIComponent(projectId)}/cancel`, { resend: true });
  }
}

/** Reads `text/event-stream` chunks and calls `onMessage({id, event, data})`. */
class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.reset();
  }
  reset() {
    this.data = [];
    this.event = "";
    this.id = null;
  }
  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }
  line(line) {
    if (line === "") {
      if (this.data.length) this.onMessage({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the keepalive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

const DEFAULT_POLICY = {
  keepaliveS: 10, // the server's keepalive; a stream silent twice as long is dead
  backoffBaseS: 1,
  failuresBeforeFallback: 3,
  sseRetryS: 60, // seconds of working fallback after which SSE is tried again
  longPollWaitS: 25,
  pollIntervalS: 2,
  retryAfterCapS: 30, // the longest pause taken on a 429 or 503 answer's Retry-After
  unreachableProbeS: 1, // between probes while the server is unreachable (±20 %)
};

/**
 * One connection's worth of events for the page, as DOM events:
 *  - "event": detail is a genwire event (SPEC §4), new for its job, in order;
 *  - "state": detail is { state, transport, retryInS, lastContact }; state is
 *    "connecting", "live", "reconnecting" (a break, not yet known whose),
 *    "unreachable" (no answer from the server since lastContact, a Date.now() time),
 *    "catching-up" (the server answers again; the stream is being reopened) or
 *    "polling" (the server answers, but streams are blocked on the way);
 *  - "cursor": detail is the new cursor of /api/events, to keep across reloads;
 *  - "error": detail is an error that is not the network's (401, for one).
 */
export class EventHub extends EventTarget {
  constructor(client, { cursor = null, ...policy } = {}) {
    super();
    this.client = client;
    this.policy = { ...DEFAULT_POLICY, ...policy };
    this.cursor = cursor || null; // of /api/events and /api/poll
    this.jobs = new Map(); // key → last seq seen (a job id, or "project:" + id)
    this.watched = new Set(); // jobs polled one by one in the last fallback
    this.transport = "sse";
    this.fallback = "long-poll";
    this.fallbackSince = null;
    this.failures = 0;
    this.probing = false; // the next attempt asks whether the server answers at all
    this.unreachable = false;
    this.state = "connecting";
    this.stopped = true;
    // Any answer (a "check now", a cancel) ends an unreachable wait at once.
    this.onContact = () => {
      if (this.unreachable) this.wake?.abort();
    };
  }

  /** Follow `jobId` in the polling fallback, from `after` (its last event seen). */
  watch(jobId, after = null) {
    this.watched.add(jobId);
    if (after && eventSeq(after) > (this.jobs.get(jobId) ?? -1n)) this.jobs.set(jobId, eventSeq(after));
  }

  unwatch(jobId) {
    this.watched.delete(jobId);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.abort = new AbortController();
    this.client.addEventListener("contact", this.onContact);
    this.#run();
  }

  stop() {
    this.stopped = true;
    this.client.removeEventListener("contact", this.onContact);
    this.abort?.abort();
  }

  /** Pass on the events that are new for their job, in id order; the others are
   * repeats that another transport (or a "check now") already brought. */
  ingest(events, { moveCursor = false } = {}) {
    const fresh = [];
    for (const event of [...events].sort((a, b) => (eventSeq(a.id) < eventSeq(b.id) ? -1 : 1))) {
      const seq = eventSeq(event.id);
      const key = event.job_id || `project:${event.project_id}`;
      if (moveCursor && (this.cursor === null || seq > eventSeq(this.cursor))) {
        this.cursor = event.id;
        this.dispatchEvent(new CustomEvent("cursor", { detail: this.cursor }));
      }
      if (seq <= (this.jobs.get(key) ?? -1n)) continue;
      this.jobs.set(key, seq);
      if (TERMINAL_TYPES.has(event.type)) this.watched.delete(event.job_id);
      fresh.push(event);
      this.dispatchEvent(new CustomEvent("event", { detail: event }));
    }
    return fresh;
  }

  async #run() {
    const { signal } = this.abort;
    while (!this.stopped) {
      this.#begin();
      let pauseS;
      try {
        if (this.probing) {
          pauseS = await this.#probe(signal);
        } else if (this.transport === "sse") {
          pauseS = (await this.#sse(signal)) ? this.#succeeded() : this.#failed();
        } else if (this.transport === "long-poll") {
          await this.#longPoll(signal);
          pauseS = this.#succeeded();
        } else {
          await this.#pollWatched(signal);
          pauseS = this.#succeeded();
        }
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof GenwireError && !error.retryable) {
          this.dispatchEvent(new CustomEvent("error", { detail: error }));
        }
        pauseS = this.#failed(error);
      }
      if (pauseS > 0) {
        this.wake = new AbortController();
        await sleep(pauseS * 1000, signal, this.wake.signal);
      }
    }
  }

  /** Asks the server for what it has after the cursor; the pause before the next
   * attempt. Not answered: the server is unreachable. Answered: the failure before it
   * was the stream's alone, or, after an unreachable while, the server is back and
   * SSE is opened again at once, whichever transport was in use. */
  async #probe(signal) {
    let answer;
    try {
      answer = await withTimeout((inner) => this.client.pollAll(this.cursor, 0, inner), 10_000, signal);
    } catch (error) {
      if (this.stopped) return 0;
      if (error instanceof GenwireError && fromServer(error.status)) {
        this.probing = false;
        this.unreachable = false;
        return this.#count(error);
      }
      this.unreachable = true;
      this.#setState("unreachable");
      return this.policy.unreachableProbeS * (0.8 + Math.random() * 0.4);
    }
    this.probing = false;
    this.ingest(answer.events, { moveCursor: true });
    if (!this.unreachable) return this.#count(this.suspect);
    this.unreachable = false;
    if (this.transport !== "sse") {
      // Back to SSE now, not after the fallback window; if streams are blocked after
      // all, one more failure sends the hub back to its fallback.
      this.fallback = this.transport;
      this.transport = "sse";
      this.failures = this.policy.failuresBeforeFallback - 1;
    } else {
      this.failures = 0;
    }
    this.fallbackSince = null;
    this.#setState("catching-up");
    return 0;
  }

  #begin() {
    if (
      this.transport !== "sse" &&
      this.fallbackSince !== null &&
      performance.now() / 1000 - this.fallbackSince >= this.policy.sseRetryS
    ) {
      // Try SSE again; one more failure sends the hub back to its fallback.
      this.fallback = this.transport;
      this.transport = "sse";
      this.failures = this.policy.failuresBeforeFallback - 1;
    }
  }

  /** One SSE connection; true when it worked (bytes came) before it ended. */
  async #sse(signal) {
    const attempt = new AbortController();
    const abortAttempt = () => attempt.abort();
    signal.addEventListener("abort", abortAttempt);
    let silence;
    const armSilence = () => {
      clearTimeout(silence);
      silence = setTimeout(() => attempt.abort(), this.policy.keepaliveS * 2000);
    };
    let worked = false;
    try {
      armSilence();
      const headers = this.client.headers({ Accept: "text/event-stream" });
      if (this.cursor) headers["Last-Event-ID"] = this.cursor;
      const response = await fetch(this.client.url("/api/events"), {
        headers,
        signal: attempt.signal,
        cache: "no-store",
      });
      this.client.noteAnswer(response.status);
      if (!response.ok) throw await errorOf(response);
      if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        throw new GenwireError(502, { detail: "not an event stream (a proxy's page?)" });
      }
      const parser = new SseParser((message) => {
        const event = JSON.parse(message.data);
        if (message.id && !event.id) event.id = message.id;
        this.ingest([event], { moveCursor: true });
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return worked;
        armSilence();
        this.client.noteAnswer(200, { quiet: true });
        if (!worked) {
          worked = true;
          this.failures = 0;
          this.fallbackSince = null;
          this.#setState("live");
        }
        parser.push(value);
      }
    } catch (error) {
      // It worked for a while: the backoff starts over (one short pause, not none, so
      // that a proxy cutting every stream does not make a busy loop).
      if (worked) this.failures = 0;
      throw error;
    } finally {
      clearTimeout(silence);
      signal.removeEventListener("abort", abortAttempt);
    }
  }

  async #longPoll(signal) {
    this.#setState("polling");
    const answer = await withTimeout(
      (inner) => this.client.pollAll(this.cursor, this.policy.longPollWaitS, inner),
      (this.policy.longPollWaitS + 10) * 1000,
      signal,
    );
    this.ingest(answer.events, { moveCursor: true });
  }

  async #pollWatched(signal) {
    this.#setState("polling");
    for (const jobId of [...this.watched]) {
      const after = this.jobs.get(jobId);
      const answer = await withTimeout(
        (inner) => this.client.pollJob(jobId, after === undefined ? null : formatEventId(after), 0, inner),
        30_000,
        signal,
      );
      this.ingest(answer.events);
      if (answer.done) this.watched.delete(jobId);
    }
  }

  #succeeded() {
    this.failures = 0;
    return this.transport === "poll" ? this.policy.pollIntervalS * (0.8 + Math.random() * 0.4) : 0;
  }

  /** The pause after a failed attempt: the answer's Retry-After (capped) when it
   * named one, whichever transport is next, else the backoff. A failure that no answer
   * of the server came with is counted only once a probe has said whose it was. */
  #failed(error = null) {
    if (!(error instanceof GenwireError && fromServer(error.status))) {
      this.probing = true;
      this.suspect = error;
      const pauseS = backoffS(1, this.policy.backoffBaseS);
      this.#setState("reconnecting", pauseS);
      return pauseS;
    }
    return this.#count(error);
  }

  /** Counts a failure of the transport in use: the backoff, or the next fallback. */
  #count(error) {
    const waitS = error instanceof GenwireError ? error.retryAfterS : null;
    const saidS = waitS === null ? null : Math.min(waitS, this.policy.retryAfterCapS);
    this.failures += 1;
    if (this.transport !== "poll" && this.failures >= this.policy.failuresBeforeFallback) {
      this.transport = this.transport === "sse" ? this.fallback : "poll";
      this.fallbackSince = performance.now() / 1000;
      this.failures = 0;
      this.#setState("polling", saidS);
      return saidS ?? 0;
    }
    const pauseS = saidS ?? backoffS(this.failures, this.policy.backoffBaseS);
    this.#setState(this.transport === "sse" ? "reconnecting" : "polling", pauseS);
    return pauseS;
  }

  #setState(state, retryInS = null) {
    const changed = state !== this.state || this.transport !== this.shownTransport;
    this.state = state;
    this.shownTransport = this.transport;
    if (changed || retryInS !== null) {
      const detail = { state, transport: this.transport, retryInS, lastContact: this.client.lastContact };
      this.dispatchEvent(new CustomEvent("state", { detail }));
    }
  }
}


async function errorOf(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `HTTP ${response.status}` };
  }
  return new GenwireError(response.status, problem, retryAfterS(response));
}

/** Runs `call(signal)`, aborted after `ms` or when `outer` aborts. */
async function withTimeout(call, ms, outer) {
  const inner = new AbortController();
  const timer = setTimeout(() => inner.abort(), ms);
  const abort = () => inner.abort();
  outer.addEventListener("abort", abort);
  try {
    return await call(inner.signal);
  } finally {
    clearTimeout(timer);
    outer.removeEventListener("abort", abort);
  }
}

/** The jobs and projects a page follows and its cursor, kept in localStorage so
 * that a reload recovers them. */
export class FollowList {
  constructor(storage = globalThis.localStorage, key = "genwire.follow.v1", limit = 50) {
    this.storage = storage;
    this.key = key;
    this.limit = limit;
    const saved = this.#read();
    this.jobs = saved.jobs || [];
    this.projects = saved.projects || [];
    this.cursor = saved.cursor || null;
  }
  #read() {
    try {
      return JSON.parse(this.storage?.getItem(this.key) || "{}");
    } catch {
      return {};
    }
  }
  save() {
    const data = { jobs: this.jobs.slice(0, this.limit), projects: this.projects.slice(0, this.limit), cursor: this.cursor };
    try {
      this.storage?.setItem(this.key, JSON.stringify(data));
    } catch {
      // Storage full or refused (private mode): following still works until a reload.
    }
  }
  addJob(jobId) {
    if (!this.jobs.includes(jobId)) this.jobs.unshift(jobId);
    this.save();
  }
  addProject(projectId) {
    if (!this.projects.includes(projectId)) this.projects.unshift(projectId);
    this.save();
  }
  forget(id) {
    this.jobs = this.jobs.filter((item) => item !== id);
    this.projects = this.projects.filter((item) => item !== id);
    this.save();
  }
  setCursor(cursor) {
    this.cursor = cursor;
    this.save();
  }
}

// The page at `/`: start a generation, watch every job live, get the result. It is
// built on genwire.js. Jobs and batches are rebuilt after a reload from the ids kept
// in localStorage. Each one is replayed from its own log, then followed on the one
// shared connection.

import { EventHub, FollowList, GenwireClient, GenwireError, eventSeq, formatEventId } from "./genwire.js";

const KEY_STORAGE = "genwire.apiKey";
const CURSOR_SAVE_MS = 1000; // the cursor is saved at most this often, not per event
const RECENT_JOBS = 10; // shown on a first visit, before anything was started here
const $ = (selector, root = document) => root.querySelector(selector);

const client = new GenwireClient({ apiKey: localStorage.getItem(KEY_STORAGE) });
const follow = new FollowList();
const hub = new EventHub(client, { cursor: follow.cursor });
const pipelines = new Map(); // name → its description (phases, input schema)
const jobs = new Map(); // id → JobView
const projects = new Map(); // id → ProjectView
let connection = { state: "connecting" }; // the hub's last "state" detail

// -- small DOM helpers -------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function announce(text) {
  $("#announcer").textContent = text;
}

function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

function describeError(error) {
  if (error instanceof GenwireError) {
    const fields = error.errors.map((item) => `${item.field}: ${item.message}`).join("; ");
    return fields ? `${error.message} (${fields})` : error.message;
  }
  return `Cannot reach the server (${error.message}).`;
}

// -- the form, from the pipeline's JSON Schema --------------------------------------------

/** The type of a schema property: `{"type": X}` or `{"anyOf": [{X}, {"type": "null"}]}`. */
function fieldType(property) {
  if (property.type) return { ...property, optional: false };
  const options = (property.anyOf || []).filter((option) => option.type !== "null");
  return { ...property, ...(options[0] || { type: "string" }), optional: true };
}

/** The title pydantic gives a field that has none of its own: its name, title-cased
 * ("step_ms" → "Step Ms"). It is no label for a person. */
function machineTitle(name) {
  return name.replace(/[A-Za-z]+/g, (word) => word[0].toUpperCase() + word.slice(1).toLowerCase()).replaceAll("_", " ").trim();
}

const UNITS = { s: "seconds", ms: "ms", px: "pixels", bytes: "bytes" }; // a name's last word
const ACRONYMS = new Set(["fps", "id", "url", "json", "api", "http"]);

/** A person's label for a field: its schema title, unless that is only its name
 * title-cased, in which case one made from the name ("duration_s" → "Duration (seconds)"). */
function labelFor(name, property) {
  if (property.title && property.title !== machineTitle(name)) return property.title;
  const words = name.split("_").filter(Boolean);
  const unit = words.length > 1 && UNITS[words.at(-1)] ? ` (${UNITS[words.pop()]})` : "";
  const text = words.map((word) => (ACRONYMS.has(word.toLowerCase()) ? word.toUpperCase() : word.toLowerCase())).join(" ");
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${unit}`;
}

function inputFor(name, property, required) {
  const spec = fieldType(property);
  const id = `input-${name}`;
  const help = property.description ? el("p", { class: "help", id: `${id}-help`, text: property.description }) : null;
  const common = { id, name, "aria-describedby": help ? `${id}-help` : null };
  let control;
  if (spec.type === "boolean") {
    control = el("input", { ...common, type: "checkbox", checked: property.default === true });
    control.dataset.type = "boolean"; // read as `checked`: its `value` is "on" either way
    return el("div", { class: "field" }, el("div", { class: "check" }, control, el("label", { for: id, text: labelFor(name, property) })), help);
  }
  if (spec.type === "object" || spec.type === "array") {
    // Free-form JSON (a provider's own input): written as text, parsed on Start.
    control = el("textarea", { ...common, rows: 3, spellcheck: "false", placeholder: spec.type === "object" ? '{"prompt": "…"}' : "[…]" });
    control.value = property.default && Object.keys(property.default).length ? JSON.stringify(property.default) : "";
  } else if (spec.enum) {
    control = el("select", common, ...spec.enum.map((value) => el("option", { value, text: value, selected: value === property.default })));
  } else if (spec.type === "integer" || spec.type === "number") {
    control = el("input", {
      ...common,
      type: "number",
      inputmode: spec.type === "integer" ? "numeric" : "decimal",
      min: spec.minimum ?? spec.exclusiveMinimum,
      max: spec.maximum ?? spec.exclusiveMaximum,
      step: spec.type === "integer" ? spec.multipleOf || 1 : "any",
      value: property.default ?? "",
      placeholder: spec.optional ? "optional" : null,
    });
  } else if ((spec.maxLength || 0) > 200) {
    control = el("textarea", { ...common, rows: 2, maxlength: spec.maxLength, required: required });
    control.value = property.default ?? "";
  } else {
    control = el("input", { ...common, type: "text", value: property.default ?? "", pattern: spec.pattern, maxlength: spec.maxLength, required: required });
  }
  control.dataset.type = spec.type;
  const label = el("label", { for: id, text: labelFor(name, property) });
  return el("div", { class: "field" }, label, control, help);
}

function renderForm() {
  const pipeline = pipelines.get($("#pipeline").value);
  const schema = pipeline?.input_schema || { properties: {} };
  $("#pipeline-description").textContent = pipeline?.description || "";
  const required = new Set(schema.required || []);
  const entries = Object.entries(schema.properties || {});
  // First the fields a person must decide, those with no default (required, or filled
  // in by the server, as a provider's `input`); where every field has one, the first.
  const undecided = entries.filter(([, property]) => !("default" in property));
  const primary = new Set((undecided.length ? undecided : entries.slice(0, 1)).map(([name]) => name));
  const field = ([name, property]) => inputFor(name, property, required.has(name));
  $("#fields").replaceChildren(...entries.filter(([name]) => primary.has(name)).map(field));
  $("#more-fields").replaceChildren(...entries.filter(([name]) => !primary.has(name)).map(field));
  // Another pipeline's options start folded, whatever was open for the last one.
  $("#more-options").open = false;
  $("#more-options").hidden = !$("#more-fields").childElementCount;
}

/** The controls of the pipeline's input, shown or folded. */
function inputControls() {
  return document.querySelectorAll("#fields [name], #more-fields [name]");
}

/** Marks a control invalid, unfolding "More options" if it is there, so that it shows. */
function markControlInvalid(control) {
  control.setAttribute("aria-invalid", "true");
  if ($("#more-options").contains(control)) $("#more-options").open = true;
}

function readInput() {
  const input = {};
  for (const control of inputControls()) {
    control.removeAttribute("aria-invalid");
    const type = control.dataset.type;
    if (type === "boolean") {
      input[control.name] = control.checked;
      continue;
    }
    const raw = control.value.trim();
    if (raw === "") continue; // the pipeline's default applies
    if (type === "object" || type === "array") {
      try {
        input[control.name] = JSON.parse(raw);
      } catch {
        markControlInvalid(control);
        throw new FormError(`${control.name}: not valid JSON`);
      }
      continue;
    }
    input[control.name] = type === "integer" ? Number.parseInt(raw, 10) : type === "number" ? Number(raw) : raw;
  }
  return input;
}

function markInvalid(error) {
  for (const item of error.errors || []) {
    const name = String(item.field).replace(/^input\./, "");
    const control = [...inputControls()].find((candidate) => candidate.name === name);
    if (control) markControlInvalid(control);
  }
}

/** A batch's inputs. Where the pipeline takes a seed, each clip gets its own: the seed
 * set (else a random one) plus the clip's number, so the clips differ and each one can
 * be made again from the seed in its input. */
function batchInputs(pipeline, input, clips) {
  const seed = pipelines.get(pipeline)?.input_schema?.properties?.seed;
  if (!seed || fieldType(seed).type !== "integer") return Array.from({ length: clips }, () => input);
  const low = fieldType(seed).minimum ?? 0;
  const span = (fieldType(seed).maximum ?? 2 ** 32 - 1) - low + 1;
  const base = input.seed ?? low + (crypto.getRandomValues(new Uint32Array(1))[0] % span);
  return Array.from({ length: clips }, (_, index) => ({ ...input, seed: low + ((base - low + index) % span) }));
}

class FormError extends Error {}

async function submitForm(event) {
  event.preventDefault();
  const button = $("#new-job button[type=submit]");
  const pipeline = $("#pipeline").value;
  let input;
  try {
    input = readInput();
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    $("#form-error").textContent = error.message;
    return;
  }
  const clips = Math.max(1, Number.parseInt($("#batch-size").value, 10) || 1);
  $("#form-error").textContent = "";
  button.disabled = true;
  try {
    if (clips > 1) {
      const project = await client.createProject(batchInputs(pipeline, input, clips).map((clip) => ({ pipeline, input: clip })));
      follow.addProject(project.id);
      showProject(project);
      announce(`Batch of ${clips} started`);
    } else {
      const job = await client.submit(pipeline, input);
      follow.addJob(job.id);
      await showJob(job);
      announce(`${pipeline} started`);
    }
  } catch (error) {
    $("#form-error").textContent = describeError(error);
    if (error instanceof GenwireError) markInvalid(error);
  } finally {
    button.disabled = false;
  }
}

// -- one job -------------------------------------------------------------------------------

const STATUS_TEXT = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed", cancelled: "Cancelled" };
// Why an attempt ended (the `reason.code` of the event that requeued its job), in
// people's words; a code not listed here shows the server's own `reason.message`.
const REASON_TEXT = { server_restarted: "the server restarted", worker_lost: "its worker stopped answering" };

function reasonText(reason) {
  return reason ? REASON_TEXT[reason.code] || reason.message : null;
}

class JobView {
  constructor(snapshot, { clip = false } = {}) {
    this.id = snapshot.id;
    this.clip = clip; // a clip of a batch: it stays in its batch
    this.pipeline = snapshot.pipeline;
    this.phaseStates = new Map(); // phase → "active" | "done" | "skipped", from step-status
    this.warnings = [];
    this.artifacts = [];
    this.eta = null;
    this.createdAt = snapshot.created_at; // "Done in" counts from here, over every attempt
    this.attempt = snapshot.attempt || 1;
    this.eventAttempt = 1; // the attempt of the events applied so far (a log starts at 1)
    this.maxAttempts = null; // told by the event that requeued the job: no snapshot has it
    this.retry = null; // { attempt, reason, reached }: why the attempt before ended, and where
    this.seq = 0n; // the last event applied: each is applied once, in order
    // With API keys, the job's stream token (in its URLs) also opens its files:
    // <video>, <img> and download links cannot send the key.
    this.token = new URL(snapshot.urls?.events || "/", location.href).searchParams.get("token");
    this.pending = null; // events that came while the log was being read, to apply after
    this.element = this.#build(snapshot);
    this.applySnapshot(snapshot);
  }

  get terminal() {
    return ["succeeded", "failed", "cancelled"].includes(this.status);
  }

  #build(snapshot) {
    const phases = pipelines.get(snapshot.pipeline)?.phases || [];
    const prompt = snapshot.input?.prompt;
    const title = `${snapshot.pipeline} · ${snapshot.id.slice(-8)}`;
    this.chips = el("ul", { class: "phases", "aria-label": "Phases" }, ...phases.map((phase) => el("li", { class: "chip", "data-phase": phase.name, "data-state": "pending", text: phase.name })));
    this.progress = el("progress", { class: "job-progress", max: 100, value: 0, "aria-label": `Progress of ${title}` });
    this.attemptText = el("p", { class: "job-attempt", hidden: true });
    this.statusBadge = el("span", { class: "status" });
    this.message = el("span", { class: "job-message" });
    this.etaText = el("span", { class: "job-eta" });
    this.checked = el("span", { class: "job-checked" });
    this.connectionText = el("span", { class: "job-connection" });
    this.warningList = el("ul", { class: "job-warnings", "aria-label": "Warnings" });
    this.errorText = el("p", { class: "job-error", role: "alert", hidden: true });
    this.result = el("div", { class: "job-result" });
    this.cancelButton = el("button", { type: "button", class: "job-cancel secondary", text: "Cancel", "aria-label": `Cancel ${title}`, onclick: () => this.cancel() });
    this.checkButton = el("button", { type: "button", class: "job-check secondary", text: "Check now", "aria-label": `Check ${title} now`, onclick: () => this.checkNow() });
    this.removeButton = el("button", { type: "button", class: "job-remove secondary", text: "Remove", "aria-label": `Remove ${title} from this list`, hidden: true, onclick: () => this.remove() });
    return el(
      "article",
      { class: this.clip ? "job clip" : "job", "data-job-id": snapshot.id, "aria-label": title },
      el("div", { class: "job-head" }, el("h3", { text: title }), this.statusBadge),
      prompt ? el("p", { class: "job-prompt", text: prompt }) : null,
      this.chips,
      this.attemptText,
      this.progress,
      el("div", { class: "job-line" }, this.message, this.etaText, this.checked, this.connectionText),
      this.warningList,
      this.errorText,
      el("div", { class: "job-actions" }, this.cancelButton, this.checkButton, this.removeButton),
      this.result,
    );
  }

  applySnapshot(snapshot) {
    if (snapshot.last_event_id && eventSeq(snapshot.last_event_id) < this.seq) {
      // An answer older than the events already shown (a cancel's 202 that the
      // stream's job-cancelled overtook): it must not undo them.
      this.cancelRequested = this.cancelRequested || snapshot.cancel_requested;
      this.render();
      return;
    }
    this.status = snapshot.status;
    this.phase = snapshot.phase;
    this.progressValue = snapshot.progress;
    this.messageText = snapshot.message;
    this.queuePosition = snapshot.queue_position;
    this.cancelRequested = snapshot.cancel_requested;
    this.artifacts = snapshot.artifacts || this.artifacts;
    this.error = snapshot.error;
    this.attempt = snapshot.attempt || this.attempt;
    this.render();
  }

  /** An event from the connection: applied now, or after the catch-up under way. */
  receive(event) {
    if (this.pending) this.pending.push(event);
    else this.accept(event);
  }

  accept(event) {
    const seq = eventSeq(event.id);
    if (seq <= this.seq) return;
    this.seq = seq;
    this.clearFailedCheck();
    this.apply(event);
  }

  /** Reads the job's log after the last event applied, from the server itself: after
   * a reload (the phases, warnings and artifacts seen before it), for "check now", and
   * for events that came before this view existed. */
  async catchUp() {
    if (this.pending) return this.catchingUp;
    this.pending = [];
    this.catchingUp = (async () => {
      try {
        for (;;) {
          const answer = await client.pollJob(this.id, this.seq ? formatEventId(this.seq) : null, 0);
          answer.events.forEach((event) => this.accept(event));
          if (!answer.events.length || answer.done) return;
        }
      } finally {
        const pending = this.pending;
        this.pending = null;
        pending.sort((a, b) => (eventSeq(a.id) < eventSeq(b.id) ? -1 : 1)).forEach((event) => this.accept(event));
        if (!this.terminal) hub.watch(this.id, formatEventId(this.seq));
      }
    })();
    return this.catchingUp;
  }

  apply(event) {
    switch (event.type) {
      case "job-status":
        if (event.attempt > this.eventAttempt) this.startOver(event);
        this.attempt = event.attempt ?? this.attempt;
        this.status = event.status;
        this.phase = event.phase ?? this.phase;
        this.progressValue = event.progress ?? this.progressValue;
        this.messageText = event.message ?? this.messageText;
        this.queuePosition = event.queue_position;
        this.eta = null;
        break;
      case "step-status":
        this.phaseStates.set(event.phase, { started: "active", completed: "done", skipped: "skipped" }[event.state]);
        if (event.state === "started") this.phase = event.phase;
        this.progressValue = event.progress ?? this.progressValue;
        break;
      case "step-progress":
        this.phase = event.phase ?? this.phase;
        this.progressValue = event.progress;
        if (event.message) this.messageText = event.message;
        this.eta = event.eta_s ?? null;
        break;
      case "warning":
        this.warnings.push(event.message);
        break;
      case "artifact":
        if (!this.artifacts.some((item) => item.id === event.artifact.id)) this.artifacts.push(event.artifact);
        break;
      case "job-completed":
        this.status = "succeeded";
        this.progressValue = 100;
        this.artifacts = event.artifacts || this.artifacts;
        this.messageText = `Done in ${this.elapsedS(event).toFixed(1)} s${this.attempt > 1 ? ` · ${this.attempt} attempts` : ""}`;
        break;
      case "job-failed":
        this.status = "failed";
        this.error = event.error;
        break;
      case "job-cancelled":
        this.status = "cancelled";
        this.messageText = "Cancelled";
        break;
      default:
        return;
    }
    this.render();
    if (this.terminal && event.type.startsWith("job-") && event.type !== "job-status") {
      announce(`${this.pipeline} ${STATUS_TEXT[this.status].toLowerCase()}`);
      onClipChanged(this);
    }
  }

  chipState(name, index, phases) {
    const explicit = this.phaseStates.get(name);
    if (explicit === "done" || explicit === "skipped") return explicit;
    if (this.status === "succeeded") return "done";
    const current = phases.findIndex((phase) => phase.name === this.phase);
    if (current < 0) return explicit || "pending";
    if (index < current) return "done";
    // A job that ended inside a phase shows where: the phase failed or was stopped.
    if (index === current) return this.terminal ? { failed: "failed", cancelled: "stopped" }[this.status] || "pending" : "active";
    return "pending";
  }

  render() {
    const phases = pipelines.get(this.pipeline)?.phases || [];
    this.element.dataset.status = this.status;
    this.statusBadge.textContent = this.cancelRequested && !this.terminal ? "Cancelling" : STATUS_TEXT[this.status] || this.status;
    phases.forEach((phase, index) => {
      const chip = this.chips.children[index];
      if (chip) chip.dataset.state = this.chipState(phase.name, index, phases);
    });
    this.progress.value = Math.max(0, Math.min(100, this.progressValue || 0));
    this.showAttempt();
    const queued = this.status === "queued" && this.queuePosition ? `Queued, position ${this.queuePosition}` : null;
    this.message.textContent = queued || this.messageText || "";
    this.showConnection();
    if (this.warningList.children.length !== this.warnings.length) {
      this.warningList.replaceChildren(...this.warnings.map((text) => el("li", { text })));
    }
    this.errorText.hidden = !this.error;
    this.errorText.textContent = this.error ? `${this.error.code}: ${this.error.message}` : "";
    this.cancelButton.hidden = this.terminal;
    this.cancelButton.disabled = Boolean(this.cancelRequested);
    this.removeButton.hidden = !this.terminal || this.clip;
    if (this.status === "succeeded" && !this.result.childElementCount) this.renderResult();
  }

  /** The job runs again from its start (a new attempt): what the last one showed of
   * its phases and files goes, and its bar starts over from 0. */
  startOver(event) {
    this.eventAttempt = event.attempt;
    this.retry = { attempt: event.attempt, reason: event.reason || null, reached: this.progressValue || 0 };
    this.maxAttempts = event.max_attempts ?? this.maxAttempts;
    this.phaseStates.clear();
    this.artifacts = [];
    this.restarted = !this.pending; // seen live, not replayed after a reload: flash the bar
  }

  /** "Attempt 2 of 3 — the server restarted during attempt 1 (at 88 %)…" once the job
   * runs again; the bar, back at 0, flashes so that it does not seem to carry on. */
  showAttempt() {
    this.element.dataset.attempt = this.attempt;
    this.attemptText.hidden = this.attempt <= 1;
    if (this.attempt > 1) {
      const of = this.maxAttempts ? ` of ${this.maxAttempts}` : "";
      const retry = this.retry?.attempt === this.attempt ? this.retry : null;
      let why = "";
      if (retry) {
        const reached = retry.reached ? ` (at ${Math.floor(retry.reached)} %)` : "";
        const ended = reasonText(retry.reason);
        why = ended ? ` — ${ended} during attempt ${this.attempt - 1}${reached}, so it started over` : ` — attempt ${this.attempt - 1} stopped${reached}, so it started over`;
      }
      this.attemptText.textContent = `Attempt ${this.attempt}${of}${why}`;
    }
    if (this.restarted) {
      this.restarted = false;
      this.progress.classList.remove("restarted");
      void this.progress.offsetWidth; // a new attempt flashes again, even the next one
      this.progress.classList.add("restarted");
    }
  }

  /** Seconds from the job's creation to `event`, over every attempt and the waits
   * between them: the wait a person had (the event's duration_s counts the last
   * attempt only). */
  elapsedS(event) {
    const total = (Date.parse(event.ts) - Date.parse(this.createdAt)) / 1000;
    return Number.isFinite(total) ? total : Number(event.duration_s);
  }

  /** The connection's state beside the job while it runs; its ETA only while events
   * can come, since one from before an outage would look live. */
  showConnection() {
    const unreachable = connection.state === "unreachable";
    this.element.toggleAttribute("data-unreachable", unreachable && !this.terminal);
    this.etaText.textContent = !this.terminal && !unreachable && this.eta ? `about ${Math.ceil(this.eta)} s left` : "";
    this.connectionText.hidden = this.terminal;
    this.connectionText.dataset.state = connection.state;
    this.connectionText.textContent = this.terminal ? "" : connectionText(connection);
    this.connectionText.title = connectionTitle(connection);
  }

  /** A failed "check now" (or cancel) says so only until the server answers again or
   * the job moves: after that, it is no longer true. */
  showFailedCheck(error) {
    this.checked.textContent = describeError(error);
    this.checked.dataset.failed = "";
  }

  clearFailedCheck() {
    if (!("failed" in this.checked.dataset)) return;
    delete this.checked.dataset.failed;
    this.checked.textContent = "";
  }

  fileUrl(url) {
    const target = client.url(url);
    return this.token ? `${target}${target.includes("?") ? "&" : "?"}token=${encodeURIComponent(this.token)}` : target;
  }

  renderResult() {
    const byType = (prefix) => this.artifacts.filter((item) => (item.type || "").startsWith(prefix));
    const poster = byType("image/")[0];
    for (const video of byType("video/")) {
      const player = el("video", { controls: true, preload: "metadata", src: this.fileUrl(video.url), poster: poster ? this.fileUrl(poster.url) : null, "aria-label": `Video: ${video.name}` });
      const subtitles = this.artifacts.find((item) => /\.(srt|vtt)$/i.test(item.name));
      if (subtitles) addSubtitles(player, subtitles);
      this.result.append(player);
    }
    if (!byType("video/").length) {
      for (const image of byType("image/")) {
        this.result.append(el("img", { src: this.fileUrl(image.url), alt: `Result of ${this.pipeline}: ${image.name}` }));
      }
    }
    if (this.artifacts.length) {
      this.result.append(
        el("ul", { class: "downloads", "aria-label": "Downloads" }, ...this.artifacts.map((item) => el("li", {}, el("a", { href: this.fileUrl(item.url), download: item.name, text: `${item.name} (${formatBytes(item.size_bytes)})` })))),
      );
    }
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      this.applySnapshot(await client.cancel(this.id));
    } catch (error) {
      if (error instanceof GenwireError && error.status === 409) return this.checkNow();
      this.showFailedCheck(error);
      this.cancelButton.disabled = false;
    }
  }

  /** Asks the server directly, whatever the connection is doing; the events it
   * brings go through the hub, so none is shown twice. */
  async checkNow() {
    this.checkButton.disabled = true;
    try {
      const snapshot = await client.getJob(this.id);
      await this.catchUp();
      this.cancelRequested = snapshot.cancel_requested;
      this.clearFailedCheck();
      this.checked.textContent = `checked ${new Date().toLocaleTimeString()}`;
      this.render();
    } catch (error) {
      this.showFailedCheck(error);
    } finally {
      this.checkButton.disabled = false;
    }
  }

  remove() {
    jobs.delete(this.id);
    hub.unwatch(this.id);
    follow.forget(this.id);
    this.element.remove();
    updateEmpty();
  }
}

/** Browsers play WebVTT tracks, not SRT: the SRT is fetched and turned into VTT. */
async function addSubtitles(player, artifact) {
  try {
    const response = await fetch(client.url(artifact.url), { headers: client.headers({ Accept: "*/*" }) });
    const text = await response.text();
    const vtt = /\.vtt$/i.test(artifact.name)
      ? text
      : `WEBVTT\n\n${text.replace(/\r/g, "").replace(/(\d\d:\d\d:\d\d),(\d\d\d)/g, "$1.$2")}`;
    const src = URL.createObjectURL(new Blob([vtt], { type: "text/vtt" }));
    player.append(el("track", { kind: "subtitles", label: "Subtitles", srclang: "en", src, default: true }));
  } catch {
    // The video plays without them; the SRT stays in the downloads.
  }
}

async function showJob(snapshot, { container = $("#jobs") } = {}) {
  let view = jobs.get(snapshot.id);
  if (!view) {
    view = new JobView(snapshot, { clip: container !== $("#jobs") });
    jobs.set(snapshot.id, view);
    container.prepend(view.element);
    updateEmpty();
  }
  await view.catchUp();
  return view;
}

function updateEmpty() {
  $("#no-jobs").hidden = $("#jobs").childElementCount > 0;
}

// -- batches (projects) ------------------------------------------------------------------

class ProjectView {
  constructor(project) {
    this.id = project.id;
    this.counts = el("p", { class: "project-counts", role: "status" });
    this.clips = el("div", { class: "clips" });
    this.cancelButton = el("button", { type: "button", class: "project-cancel secondary", text: "Cancel batch", onclick: () => this.cancel() });
    this.element = el(
      "article",
      { class: "project", "data-project-id": project.id, "aria-label": `Batch ${project.name || project.id}` },
      el("h3", { text: project.name || `Batch · ${project.id.slice(-8)}` }),
      this.counts,
      el("div", { class: "job-actions" }, this.cancelButton),
      this.clips,
    );
    this.update(project);
  }

  update(project) {
    this.total = project.total_clips ?? this.total;
    for (const snapshot of project.jobs || []) {
      const shown = jobs.get(snapshot.id);
      if (!shown) {
        showJob(snapshot, { container: this.clips });
      } else if (!this.clips.contains(shown.element)) {
        // Drawn as a lone job before its batch was known: it belongs here.
        shown.clip = true;
        shown.element.classList.add("clip");
        follow.forget(shown.id);
        this.clips.append(shown.element);
        shown.render();
        updateEmpty();
      }
    }
    this.recount();
  }

  recount() {
    const views = [...this.clips.querySelectorAll(".clip")].map((node) => jobs.get(node.dataset.jobId)).filter(Boolean);
    const count = (status) => views.filter((view) => view.status === status).length;
    const done = count("succeeded");
    const failed = count("failed");
    const cancelled = count("cancelled");
    const total = this.total || views.length;
    const pending = total - done - failed - cancelled;
    this.counts.textContent = `${done}/${total} completed · ${pending} pending · ${failed} failed · ${cancelled} cancelled`;
    this.element.dataset.complete = String(pending === 0);
    this.cancelButton.hidden = pending === 0;
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      this.update(await client.cancelProject(this.id));
    } catch (error) {
      this.counts.textContent = describeError(error);
    } finally {
      this.cancelButton.disabled = false;
    }
  }
}

function showProject(project) {
  let view = projects.get(project.id);
  if (!view) {
    view = new ProjectView(project);
    projects.set(project.id, view);
    $("#projects").prepend(view.element);
    $("#projects-section").hidden = false;
  } else {
    view.update(project);
  }
  return view;
}

function onClipChanged(jobView) {
  for (const project of projects.values()) {
    if (project.clips.contains(jobView.element)) project.recount();
  }
}

// -- the connection ------------------------------------------------------------------------

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

const STATE_TEXT = {
  connecting: () => "Connecting…",
  live: () => "Live",
  "catching-up": () => "Catching up…",
  reconnecting: (detail) => (detail.retryInS ? `Reconnecting in ${Math.ceil(detail.retryInS)} s…` : "Reconnecting…"),
  unreachable: (detail) => (detail.lastContact ? `Server unreachable since ${clock(detail.lastContact)}` : "Server unreachable"),
  polling: () => "Polling: streams are blocked",
};

function connectionText(detail) {
  return (STATE_TEXT[detail.state] || STATE_TEXT.connecting)(detail);
}

function connectionTitle(detail) {
  if (detail.state === "unreachable") {
    const last = detail.lastContact ? `; its last answer came at ${clock(detail.lastContact)}` : "";
    return `The server does not answer${last}. Trying again every second.`;
  }
  if (detail.state === "polling") {
    const how = detail.transport === "poll" ? "asking for each job every few seconds" : "long-polling";
    return `The server answers, but its event stream does not get through (a proxy that blocks or buffers streams?): ${how}.`;
  }
  return "";
}

function onState(event) {
  connection = event.detail;
  const pill = $("#connection");
  pill.dataset.state = connection.state;
  pill.dataset.transport = connection.transport;
  pill.textContent = connectionText(connection);
  pill.title = connectionTitle(connection);
  for (const view of jobs.values()) view.showConnection();
}

async function onEvent(event) {
  const detail = event.detail;
  if (detail.job_id) {
    const view = jobs.get(detail.job_id);
    if (view) return view.receive(detail);
    if (detail.type === "job-status" && detail.status === "queued" && !detail.project_id) {
      // A job started elsewhere (another tab, the CLI): show it too. A clip of a
      // batch is shown by its batch, which may not have been drawn yet.
      const snapshot = await client.getJob(detail.job_id);
      if (snapshot.project_id) return discoverProject(snapshot.project_id);
      if (jobs.has(snapshot.id)) return;
      follow.addJob(snapshot.id);
      await showJob(snapshot);
    }
    return;
  }
  if (!detail.project_id) return;
  if (projects.has(detail.project_id)) showProject(await client.getProject(detail.project_id));
  else await discoverProject(detail.project_id);
}

const discovering = new Set(); // project ids being fetched, so a batch's clips fetch it once

/** A batch created elsewhere (another tab, the CLI, the API): show and follow it. */
async function discoverProject(projectId) {
  if (projects.has(projectId) || discovering.has(projectId)) return;
  discovering.add(projectId);
  try {
    const project = await client.getProject(projectId);
    follow.addProject(project.id);
    showProject(project);
  } catch (error) {
    // A free-form project_id given to POST /jobs names no batch: nothing to show.
    if (!(error instanceof GenwireError && error.status === 404)) throw error;
  } finally {
    discovering.delete(projectId);
  }
}

let cursorTimer = null;
function onCursor(event) {
  follow.cursor = event.detail;
  cursorTimer ??= setTimeout(() => {
    cursorTimer = null;
    follow.setCursor(follow.cursor);
  }, CURSOR_SAVE_MS);
}

// -- start ---------------------------------------------------------------------------------

async function recover() {
  const firstVisit = !follow.jobs.length && !follow.projects.length && follow.cursor === null;
  let ids = [...follow.jobs].reverse(); // oldest first, so the newest ends on top
  if (firstVisit) {
    const recent = await client.listJobs({ limit: RECENT_JOBS });
    ids = recent.items.filter((job) => !job.project_id).map((job) => job.id).reverse();
    ids.forEach((id) => follow.addJob(id));
  }
  for (const id of ids) {
    try {
      await showJob(await client.getJob(id));
    } catch (error) {
      if (error instanceof GenwireError && error.status === 404) follow.forget(id);
      else throw error;
    }
  }
  for (const id of [...follow.projects].reverse()) {
    try {
      showProject(await client.getProject(id));
    } catch (error) {
      if (error instanceof GenwireError && error.status === 404) follow.forget(id);
      else throw error;
    }
  }
  if (hub.cursor === null) {
    // Nothing older than what was just replayed is needed from /api/events.
    const newest = [...jobs.values()].reduce((max, view) => (view.seq > max ? view.seq : max), 0n);
    if (newest > 0n) hub.cursor = formatEventId(newest);
  }
}

async function main() {
  $("#api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, $("#api-key").value.trim());
    location.reload();
  });
  hub.addEventListener("state", onState);
  client.addEventListener("contact", () => jobs.forEach((view) => view.clearFailedCheck()));
  hub.addEventListener("event", onEvent);
  hub.addEventListener("cursor", onCursor);
  hub.addEventListener("error", (event) => {
    if (event.detail.status === 401) $("#settings").open = true;
  });
  $("#new-job").addEventListener("submit", submitForm);
  $("#pipeline").addEventListener("change", renderForm);
  try {
    for (const pipeline of await client.pipelines()) pipelines.set(pipeline.name, pipeline);
    // A provider's pipeline without its key is listed, but cannot be chosen.
    $("#pipeline").replaceChildren(
      ...[...pipelines.values()].map((item) =>
        el("option", { value: item.name, text: item.available === false ? `${item.name} (no key configured)` : item.name, disabled: item.available === false }),
      ),
    );
    if (pipelines.has("demo.video")) $("#pipeline").value = "demo.video";
    renderForm();
    await recover();
  } catch (error) {
    $("#form-error").textContent = describeError(error);
    if (error instanceof GenwireError && error.status === 401) $("#settings").open = true;
  }
  updateEmpty();
  hub.start();
}

main();

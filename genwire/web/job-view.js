// One job's card. Running, it shows everything live: phases, attempt, progress, ETA,
// warnings, the connection. Finished, it folds into a row (a thumbnail, status, times
// and actions) unless it is the newest finished job or a person opened it; its log is
// read only when it opens, so a long history costs one request per page of jobs.
//
// A card tells the page what it did with events on `document`: "job-created" (a
// re-run; detail: the new job's snapshot), "job-ended" and "job-removed" (detail: the
// card).

import { GenwireError, eventSeq, formatEventId } from "./genwire.js";
import { connectionText, connectionTitle } from "./connection.js";
import { announce, copyText, describeError, el, formatBytes, formatDuration, formatWhen } from "./dom.js";
import { resultNodes } from "./job-media.js";
import { showJobJson } from "./json-dialog.js";
import { client, connection, follow, hub, jobs, pipelines } from "./state.js";

const STATUS_TEXT = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed", cancelled: "Cancelled" };
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
// Why an attempt ended (the `reason.code` of the event that requeued its job), in
// people's words; a code not listed here shows the server's own `reason.message`.
const REASON_TEXT = { server_restarted: "the server restarted", worker_lost: "its worker stopped answering" };
const COPIED_MS = 2000; // how long "Copied" stays on the button

function reasonText(reason) {
  return reason ? REASON_TEXT[reason.code] || reason.message : null;
}

function tell(type, detail) {
  document.dispatchEvent(new CustomEvent(type, { detail }));
}

export class JobView {
  constructor(snapshot, { clip = false } = {}) {
    this.id = snapshot.id;
    this.clip = clip; // a clip of a batch: it stays in its batch, and never folds
    this.pipeline = snapshot.pipeline;
    this.input = snapshot.input || {}; // what "Re-run" sends again
    this.phaseStates = new Map(); // phase → "active" | "done" | "skipped", from step-status
    this.warnings = [];
    this.artifacts = [];
    this.eta = null;
    this.createdAt = snapshot.created_at; // "Done in" counts from here, over every attempt
    this.finishedAt = null;
    this.attempt = snapshot.attempt || 1;
    this.eventAttempt = 1; // the attempt of the events applied so far (a log starts at 1)
    this.maxAttempts = null; // told by the event that requeued the job: no snapshot has it
    this.retry = null; // { attempt, reason, reached }: why the attempt before ended, and where
    this.seq = 0n; // the last event applied: each is applied once, in order
    this.snapshotSeq = 0n; // the last event of the newest snapshot, read or not
    this.logRead = false; // whether the job's log was read (a folded old job's is not)
    this.endTold = TERMINAL.has(snapshot.status); // its end is told once, and not if it came before
    this.collapsed = false;
    this.choice = null; // true / false once a person opened or folded the card
    // With API keys, the job's stream token (in its URLs) also opens its files:
    // <video>, <img> and download links cannot send the key.
    this.token = new URL(snapshot.urls?.events || "/", location.href).searchParams.get("token");
    this.pending = null; // events that came while the log was being read, to apply after
    this.element = this.#build(snapshot);
    this.applySnapshot(snapshot);
  }

  get terminal() {
    return TERMINAL.has(this.status);
  }

  /** The newest event this page knows the job has, whether or not it was applied. */
  get knownSeq() {
    return this.seq > this.snapshotSeq ? this.seq : this.snapshotSeq;
  }

  #build(snapshot) {
    const phases = pipelines.get(snapshot.pipeline)?.phases || [];
    const prompt = snapshot.input?.prompt;
    const title = `${snapshot.pipeline} · ${snapshot.id.slice(-8)}`;
    this.title = title;
    const bodyId = `body-${snapshot.id}`;
    const resultId = `result-${snapshot.id}`;
    const button = (name, text, label, onclick) => el("button", { type: "button", class: `${name} secondary`, text, "aria-label": label, onclick });
    this.thumb = el("div", { class: "job-thumb", "aria-hidden": "true" });
    this.toggle = el("button", { type: "button", class: "job-toggle", "aria-expanded": "true", "aria-controls": `${bodyId} ${resultId}`, text: title, onclick: () => this.choose(this.collapsed) });
    this.chips = el("ul", { class: "phases", "aria-label": "Phases" }, ...phases.map((phase) => el("li", { class: "chip", "data-phase": phase.name, "data-state": "pending", text: phase.name })));
    this.progress = el("progress", { class: "job-progress", max: 100, value: 0, "aria-label": `Progress of ${title}` });
    this.percent = el("span", { class: "job-percent", "aria-hidden": "true" });
    this.attemptText = el("p", { class: "job-attempt", hidden: true });
    this.statusBadge = el("span", { class: "status" });
    this.created = el("time", { class: "job-created", datetime: snapshot.created_at });
    this.took = el("span", { class: "job-took" });
    this.message = el("span", { class: "job-message" });
    this.etaText = el("span", { class: "job-eta" });
    this.checked = el("span", { class: "job-checked" });
    this.connectionText = el("span", { class: "job-connection" });
    this.warningList = el("ul", { class: "job-warnings", "aria-label": "Warnings" });
    this.errorText = el("p", { class: "job-error", role: "alert", hidden: true });
    this.result = el("div", { class: "job-result", id: resultId });
    this.playButton = button("job-play", "Play", `Play the result of ${title}`, () => this.play());
    this.download = el("a", { class: "job-download button-link", text: "Download", hidden: true });
    this.rerunButton = button("job-rerun", "Re-run", `Run ${title} again with the same input`, () => this.rerun());
    this.copyButton = button("job-copy", "Copy id", `Copy the id of ${title}`, () => this.copyId());
    this.jsonButton = button("job-json", "JSON", `Show the JSON of ${title}`, () => showJobJson(this.id));
    this.cancelButton = button("job-cancel", "Cancel", `Cancel ${title}`, () => this.cancel());
    this.checkButton = button("job-check", "Check now", `Check ${title} now`, () => this.checkNow());
    this.removeButton = button("job-remove", "Remove", `Remove ${title} from this list`, () => this.remove());
    return el(
      "article",
      { class: this.clip ? "job clip" : "job", "data-job-id": snapshot.id, "aria-label": title },
      el(
        "div",
        { class: "job-head" },
        this.thumb,
        el(
          "div",
          { class: "job-summary" },
          el("div", { class: "job-title" }, el("h3", {}, this.toggle), this.statusBadge),
          prompt ? el("p", { class: "job-prompt", text: prompt, title: prompt }) : null,
          el("p", { class: "job-times" }, this.created, this.took, el("code", { class: "job-id", text: snapshot.id })),
          this.errorText,
        ),
      ),
      el(
        "div",
        { class: "job-body", id: bodyId },
        this.chips,
        this.attemptText,
        el("div", { class: "job-progress-row" }, this.progress, this.percent),
        el("div", { class: "job-line" }, this.message, this.etaText, this.checked, this.connectionText),
        this.warningList,
      ),
      el("div", { class: "job-actions" }, this.playButton, this.download, this.cancelButton, this.checkButton, this.rerunButton, this.copyButton, this.jsonButton, this.removeButton),
      this.result,
    );
  }

  applySnapshot(snapshot) {
    const snapshotSeq = snapshot.last_event_id ? eventSeq(snapshot.last_event_id) : 0n;
    if (snapshotSeq > this.snapshotSeq) this.snapshotSeq = snapshotSeq;
    if (snapshot.last_event_id && snapshotSeq < this.seq) {
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
    this.finishedAt = snapshot.finished_at || this.finishedAt;
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
   * a reload (the phases, warnings and artifacts seen before it), when a folded card
   * opens, for "check now", and for events that came before this view existed. */
  async catchUp() {
    if (this.pending) return this.catchingUp;
    this.logRead = true;
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
        this.finishedAt = event.ts;
        this.messageText = `Done in ${formatDuration(this.elapsedS(event))}${this.attempt > 1 ? ` · ${this.attempt} attempts` : ""}`;
        break;
      case "job-failed":
        this.status = "failed";
        this.error = event.error;
        this.finishedAt = event.ts;
        break;
      case "job-cancelled":
        this.status = "cancelled";
        this.messageText = "Cancelled";
        this.finishedAt = event.ts;
        break;
      default:
        return;
    }
    this.render();
    if (this.terminal && event.type.startsWith("job-") && event.type !== "job-status" && !this.endTold) {
      // Told once: a log read again when a folded card opens replays the end too.
      this.endTold = true;
      announce(`${this.pipeline} ${STATUS_TEXT[this.status].toLowerCase()}`);
      tell("job-ended", this);
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
    this.percent.textContent = `${Math.floor(this.progress.value)} %`;
    this.showAttempt();
    this.showTimes();
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
    this.checkButton.hidden = this.terminal && (this.collapsed || this.clip); // nothing left to check
    this.rerunButton.hidden = !this.terminal;
    this.removeButton.hidden = !this.terminal || this.clip;
    this.showDownload();
    if (this.status === "succeeded" && !this.result.childElementCount) this.renderResult();
    this.showThumb();
  }

  /** "Created 14:02:07 · took 34.1 s": from creation to the end, over every attempt. */
  showTimes() {
    const created = Date.parse(this.createdAt);
    this.created.textContent = Number.isFinite(created) ? `Created ${formatWhen(created)}` : "";
    const took = this.finishedAt ? (Date.parse(this.finishedAt) - created) / 1000 : NaN;
    const attempts = this.attempt > 1 ? ` · ${this.attempt} attempts` : "";
    this.took.textContent = this.terminal && Number.isFinite(took) ? ` · took ${formatDuration(Math.max(0, took))}${attempts}` : "";
  }

  /** Folds the card into its row, or opens it (reading its log the first time). */
  setCollapsed(collapsed) {
    collapsed = collapsed && !this.clip;
    if (collapsed === this.collapsed) return;
    this.collapsed = collapsed;
    this.element.toggleAttribute("data-collapsed", collapsed);
    this.toggle.setAttribute("aria-expanded", String(!collapsed));
    if (!collapsed && !this.logRead) this.catchUp();
    this.render();
  }

  /** A person opened (`true`) or folded the card: it stays so. */
  choose(expanded) {
    this.choice = expanded;
    this.setCollapsed(!expanded);
  }

  /** The file a row offers: the video, else the image, else the first file. */
  mainArtifact() {
    const byType = (prefix) => this.artifacts.find((item) => (item.type || "").startsWith(prefix));
    return byType("video/") || byType("image/") || this.artifacts[0] || null;
  }

  showDownload() {
    const main = this.mainArtifact();
    this.download.hidden = !main;
    if (!main || this.download.dataset.artifactId === main.id) return;
    this.download.dataset.artifactId = main.id;
    this.download.href = this.fileUrl(main.url);
    this.download.download = main.name;
    this.download.title = `${main.name} (${formatBytes(main.size_bytes)})`;
    this.download.setAttribute("aria-label", `Download ${main.name} (${formatBytes(main.size_bytes)})`);
  }

  /** A folded card's picture: the poster or the image it made, else a sign of how it
   * ended. "Play" (or "View") opens the card on its result. */
  showThumb() {
    const media = this.mainArtifact();
    const playable = media && /^(video|image)\//.test(media.type || "");
    this.playButton.hidden = !(this.collapsed && playable);
    const verb = media?.type?.startsWith("video/") ? "Play" : "View";
    this.playButton.textContent = verb;
    this.playButton.setAttribute("aria-label", `${verb} the result of ${this.title}`);
    if (!this.collapsed) return;
    const key = this.posterUrl() || `status:${this.status}`;
    if (this.thumb.dataset.key === key) return;
    this.thumb.dataset.key = key;
    this.thumb.replaceChildren(this.thumbNode());
  }

  /** The job in small: its poster, else a sign of how it ended (a folded row, a
   * folded batch's strip). */
  thumbNode() {
    const poster = this.posterUrl();
    if (poster) return el("img", { src: poster, alt: "", loading: "lazy", decoding: "async" });
    return el("span", { class: "job-thumb-sign", text: { succeeded: "✓", failed: "✕", cancelled: "–" }[this.status] || "…" });
  }

  /** The address of the job's first image (a video's poster), or null. */
  posterUrl() {
    const poster = this.artifacts.find((item) => (item.type || "").startsWith("image/"));
    return poster ? this.fileUrl(poster.url) : null;
  }

  async play() {
    this.choose(true);
    this.element.scrollIntoView({ block: "start", behavior: "smooth" });
    const video = this.result.querySelector("video");
    if (!video) return;
    try {
      await video.play();
    } catch {
      // A browser that wants a click on the player itself: it is open, with its controls.
    }
  }

  async rerun() {
    this.rerunButton.disabled = true;
    try {
      const snapshot = await client.submit(this.pipeline, this.input);
      tell("job-created", snapshot);
      announce(`${this.pipeline} started again`);
    } catch (error) {
      this.showFailedCheck(error);
    } finally {
      this.rerunButton.disabled = false;
    }
  }

  async copyId() {
    try {
      await copyText(this.id);
      this.copyButton.textContent = "Copied";
      announce(`Copied ${this.id}`);
      setTimeout(() => (this.copyButton.textContent = "Copy id"), COPIED_MS);
    } catch (error) {
      this.showFailedCheck(error);
    }
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

  /** A failed "check now" (or cancel, re-run, copy) says so only until the server
   * answers again or the job moves: after that, it is no longer true. */
  showFailedCheck(error) {
    this.checked.textContent = describeError(error);
    this.checked.dataset.failed = "";
    if (this.collapsed) this.choose(true); // where it can be read
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
    const options = { deferPlayers: this.clip };
    this.result.append(...resultNodes(this.artifacts, (url) => this.fileUrl(url), this.pipeline, options));
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
    tell("job-removed", this);
  }
}

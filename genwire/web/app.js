// The page at `/`: start a generation, watch every job live, get the result, look
// back through the history. It is built on genwire.js. Jobs and batches are rebuilt
// after a reload from the ids kept in localStorage: each one is replayed from its own
// log, then followed on the one shared connection.

import { GenwireError, formatEventId } from "./genwire.js";
import { connectionText, connectionTitle } from "./connection.js";
import { $, describeError, el } from "./dom.js";
import { renderForm, submitForm } from "./form.js";
import { arrangeJobs, filterJobs, historyEnded, loadOlderJobs, showJob, showJobs, showStartedJob, updateEmpty } from "./jobs-list.js";
import { discoverProject, onClipChanged, showProject } from "./projects.js";
import { KEY_STORAGE, client, connection, follow, hub, jobs, pipelines, projects } from "./state.js";

const CURSOR_SAVE_MS = 1000; // the cursor is saved at most this often, not per event
const RECENT_JOBS = 10; // shown on a first visit, before anything was started here
const RECENT_PAGE = 100; // read for them: the API's largest page

function onState(event) {
  Object.assign(connection, event.detail);
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

let cursorTimer = null;
function onCursor(event) {
  follow.cursor = event.detail;
  cursorTimer ??= setTimeout(() => {
    cursorTimer = null;
    follow.setCursor(follow.cursor);
  }, CURSOR_SAVE_MS);
}

/** What a card did: a re-run to show, an ended job to fold or count, a removed one. */
function listenToCards() {
  document.addEventListener("job-created", (event) => showStartedJob(event.detail));
  document.addEventListener("job-ended", (event) => {
    if (event.detail.clip) onClipChanged(event.detail);
    else arrangeJobs();
  });
  document.addEventListener("job-removed", () => arrangeJobs());
}

/** The jobs this page follows, as the server has them now; those it no longer has
 * are forgotten. */
async function followedJobs() {
  const snapshots = [];
  for (const id of follow.jobs) {
    try {
      snapshots.push(await client.getJob(id));
    } catch (error) {
      if (error instanceof GenwireError && error.status === 404) follow.forget(id);
      else throw error;
    }
  }
  return snapshots;
}

async function recover() {
  const firstVisit = !follow.jobs.length && !follow.projects.length && follow.cursor === null;
  let snapshots;
  if (firstVisit) {
    // A page wider than what is shown, since a batch's clips are not shown here.
    const recent = await client.listJobs({ limit: RECENT_PAGE });
    const lone = recent.items.filter((job) => !job.project_id);
    snapshots = lone.slice(0, RECENT_JOBS);
    [...snapshots].reverse().forEach((job) => follow.addJob(job.id)); // the newest first
    if (!recent.next_cursor && lone.length <= RECENT_JOBS) historyEnded();
  } else {
    snapshots = await followedJobs();
  }
  await showJobs(snapshots);
  for (const id of [...follow.projects].reverse()) {
    try {
      showProject(await client.getProject(id));
    } catch (error) {
      if (error instanceof GenwireError && error.status === 404) follow.forget(id);
      else throw error;
    }
  }
  if (hub.cursor === null) {
    // Nothing older than what was just shown is needed from /api/events.
    const newest = [...jobs.values()].reduce((max, view) => (view.knownSeq > max ? view.knownSeq : max), 0n);
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
  listenToCards();
  $("#new-job").addEventListener("submit", submitForm);
  $("#pipeline").addEventListener("change", renderForm);
  $("#status-filter").addEventListener("change", (event) => filterJobs(event.target.value));
  $("#load-more").addEventListener("click", () => loadOlderJobs());
  $("#json-close").addEventListener("click", () => $("#json-dialog").close());
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

// The jobs section: lone jobs, newest first, that scale with history. Running jobs and
// the newest finished one are open; older finished ones fold into rows. A filter
// shows one status, and "Load older jobs" reads further pages of `GET /api/jobs`
// through its cursor, for the status filtered on.

import { $, describeError } from "./dom.js";
import { JobView } from "./job-view.js";
import { client, follow, jobs } from "./state.js";

const PAGE_SIZE = 20;
const PAGES_PER_CLICK = 5; // pages read at most to find a job not shown yet

/** Where "Load older jobs" goes on: the status filtered on, and the next page's cursor
 * (`undefined` before the first page, `null` after the last). */
const history = { status: "", cursor: undefined, loading: null };

/** Draws jobs not drawn yet (lone, or in `container`: a batch's clips), folds and
 * opens them all at once, then reads the logs of those open: a folded finished job's
 * log is read when it opens. */
export async function showJobs(snapshots, { container = $("#jobs") } = {}) {
  const clip = container !== $("#jobs");
  const views = snapshots.map((snapshot) => {
    let view = jobs.get(snapshot.id);
    if (!view) {
      view = new JobView(snapshot, { clip });
      jobs.set(snapshot.id, view);
      if (clip) container.prepend(view.element);
      else place(view);
    }
    return view;
  });
  arrangeJobs();
  await Promise.all(views.filter((view) => !view.terminal || !view.collapsed).map((view) => view.catchUp()));
  return views;
}

export async function showJob(snapshot, options = {}) {
  const [view] = await showJobs([snapshot], options);
  return view;
}

/** A job started from this page (the form, a re-run): followed, and shown whatever
 * the filter, which goes back to all jobs when it would hide it. */
export function showStartedJob(snapshot) {
  follow.addJob(snapshot.id);
  if (history.status && history.status !== snapshot.status) {
    $("#status-filter").value = "";
    restartHistory("");
  }
  return showJob(snapshot);
}

/** Ids sort by creation time, so a job goes in before the first older one. */
function place(view) {
  const list = $("#jobs");
  const older = [...list.children].find((node) => node.dataset.jobId < view.id);
  list.insertBefore(view.element, older || null);
}

/** Opens or folds each lone job and applies the filter: what runs is open, and so is
 * the newest finished job shown, unless a person chose otherwise. */
export function arrangeJobs() {
  const views = [...$("#jobs").children].map((node) => jobs.get(node.dataset.jobId)).filter(Boolean);
  let newestFinished = null;
  for (const view of views) {
    view.element.hidden = Boolean(history.status) && view.status !== history.status;
    if (!newestFinished && view.terminal && !view.element.hidden) newestFinished = view;
  }
  for (const view of views) view.setCollapsed(view.choice !== null ? !view.choice : view.terminal && view !== newestFinished);
  updateEmpty();
}

export function updateEmpty() {
  const shown = [...$("#jobs").children].some((node) => !node.hidden);
  $("#no-jobs").textContent = history.status ? `No ${history.status} jobs on this page.` : "No jobs yet: start one above.";
  $("#no-jobs").hidden = shown;
}

/** Reads older pages until one brings a lone job not shown yet (a batch's clips are
 * shown by their batch), or the history ends. */
export function loadOlderJobs() {
  if (!history.loading && history.cursor !== null) {
    history.loading = readOlderPages().finally(() => (history.loading = null));
  }
  return history.loading;
}

async function readOlderPages() {
  const button = $("#load-more");
  button.disabled = true;
  $("#history-status").textContent = "Loading…";
  let added = 0;
  try {
    for (let page = 0; page < PAGES_PER_CLICK && added === 0 && history.cursor !== null; page++) {
      const answer = await client.listJobs({ status: history.status, limit: PAGE_SIZE, cursor: history.cursor });
      history.cursor = answer.next_cursor || null;
      const older = answer.items.filter((snapshot) => !snapshot.project_id && !jobs.has(snapshot.id));
      await showJobs(older);
      added += older.length;
    }
    $("#history-status").textContent = history.cursor === null ? "No older jobs." : "";
  } catch (error) {
    $("#history-status").textContent = describeError(error);
  } finally {
    button.disabled = false;
    button.hidden = history.cursor === null;
  }
}

/** The first visit read every job there is: nothing older to load. */
export function historyEnded() {
  history.cursor = null;
  $("#load-more").hidden = true;
}

/** "Load older jobs" starts again from the newest job of `status` ("" for all). */
function restartHistory(status) {
  history.status = status;
  history.cursor = undefined;
  $("#load-more").hidden = false;
  $("#history-status").textContent = "";
}

/** Shows one status (or all), and reads that status's history from its newest. */
export async function filterJobs(status) {
  await history.loading; // a page read for the last filter lands first
  restartHistory(status);
  arrangeJobs();
  return loadOlderJobs();
}

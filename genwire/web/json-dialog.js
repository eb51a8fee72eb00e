// The JSON dialog: a job's snapshot as the server has it now.

import { $, describeError } from "./dom.js";
import { client } from "./state.js";

/** The job's snapshot as the server has it now, in the page's dialog. Fetched with
 * the page's key, which a plain link to `/api/jobs/{id}` could not send. */
export async function showJobJson(jobId) {
  const dialog = $("#json-dialog");
  $("#json-title").textContent = jobId;
  $("#json-text").textContent = "Loading…";
  $("#json-raw").href = client.url(`/api/jobs/${encodeURIComponent(jobId)}`);
  $("#json-raw").textContent = `GET /api/jobs/${jobId}`;
  if (!dialog.open) dialog.showModal();
  try {
    $("#json-text").textContent = JSON.stringify(await client.getJob(jobId), null, 2);
  } catch (error) {
    $("#json-text").textContent = describeError(error);
  }
}

// Batches (projects): one card per batch, its clips inside, its counts kept up to date.

import { GenwireError } from "./genwire.js";
import { $, describeError, el } from "./dom.js";
import { arrangeJobs, showJobs } from "./jobs-list.js";
import { client, follow, jobs, projects } from "./state.js";

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
    showJobs((project.jobs || []).filter((snapshot) => !jobs.has(snapshot.id)), { container: this.clips });
    for (const snapshot of project.jobs || []) {
      const shown = jobs.get(snapshot.id);
      if (!this.clips.contains(shown.element)) {
        // Drawn as a lone job before its batch was known: it belongs here.
        shown.clip = true;
        shown.element.classList.add("clip");
        shown.setCollapsed(false);
        follow.forget(shown.id);
        this.clips.append(shown.element);
        shown.render();
        arrangeJobs();
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

export function showProject(project) {
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

/** A clip ended: its batch counts again. */
export function onClipChanged(jobView) {
  for (const project of projects.values()) {
    if (project.clips.contains(jobView.element)) project.recount();
  }
}

const discovering = new Set(); // project ids being fetched, so a batch's clips fetch it once

/** A batch created elsewhere (another tab, the CLI, the API): show and follow it. */
export async function discoverProject(projectId) {
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

// Batches (projects): one card per batch, its clips inside, its counts kept up to date.

import { GenwireError } from "./genwire.js";
import { $, describeError, el } from "./dom.js";
import { arrangeJobs, showJobs } from "./jobs-list.js";
import { client, follow, jobs, projects } from "./state.js";

class ProjectView {
  constructor(project) {
    this.id = project.id;
    this.collapsed = false;
    this.choice = null; // true / false once a person opened or folded the batch
    const title = project.name || `Batch · ${project.id.slice(-8)}`;
    this.toggle = el("button", { type: "button", class: "job-toggle", "aria-expanded": "true", "aria-controls": `clips-${project.id}`, text: title, onclick: () => this.choose(this.collapsed) });
    this.counts = el("p", { class: "project-counts", role: "status" });
    this.thumbs = el("div", { class: "project-thumbs", "aria-hidden": "true" });
    this.clips = el("div", { class: "clips", id: `clips-${project.id}` });
    this.cancelButton = el("button", { type: "button", class: "project-cancel secondary", text: "Cancel batch", onclick: () => this.cancel() });
    this.element = el(
      "article",
      { class: "project", "data-project-id": project.id, "aria-label": `Batch ${project.name || project.id}` },
      el("h3", {}, this.toggle),
      this.counts,
      this.thumbs,
      el("div", { class: "job-actions" }, this.cancelButton),
      this.clips,
    );
    this.update(project);
  }

  clipViews() {
    return [...this.clips.querySelectorAll(".clip")].map((node) => jobs.get(node.dataset.jobId)).filter(Boolean);
  }

  /** Folds the batch to its counts and a strip of its clips' posters, or opens it. */
  setCollapsed(collapsed) {
    this.collapsed = collapsed;
    this.element.toggleAttribute("data-collapsed", collapsed);
    this.toggle.setAttribute("aria-expanded", String(!collapsed));
    if (collapsed) this.showThumbs();
  }

  choose(expanded) {
    this.choice = expanded;
    this.setCollapsed(!expanded);
  }

  showThumbs() {
    this.thumbs.replaceChildren(...this.clipViews().map((view) => view.thumbNode()));
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
    const views = this.clipViews();
    const count = (status) => views.filter((view) => view.status === status).length;
    const done = count("succeeded");
    const failed = count("failed");
    const cancelled = count("cancelled");
    const total = this.total || views.length;
    const pending = total - done - failed - cancelled;
    this.counts.textContent = `${done}/${total} completed · ${pending} pending · ${failed} failed · ${cancelled} cancelled`;
    this.complete = pending === 0;
    this.element.dataset.complete = String(this.complete);
    this.cancelButton.hidden = this.complete;
    arrangeProjects();
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

/** Like the jobs: batches still running and the newest complete one are open, older
 * complete ones folded, unless a person chose otherwise. */
function arrangeProjects() {
  const views = [...$("#projects").children].map((node) => projects.get(node.dataset.projectId)).filter(Boolean);
  const newestComplete = views.find((view) => view.complete);
  for (const view of views) view.setCollapsed(view.choice !== null ? !view.choice : view.complete && view !== newestComplete);
}

export function showProject(project) {
  let view = projects.get(project.id);
  if (!view) {
    view = new ProjectView(project);
    projects.set(project.id, view);
    // Ids sort by creation time: the newest batch on top.
    const older = [...$("#projects").children].find((node) => node.dataset.projectId < view.id);
    $("#projects").insertBefore(view.element, older || null);
    $("#projects-section").hidden = false;
    arrangeProjects();
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

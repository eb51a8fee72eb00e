// Small helpers of the page's modules: building elements, words for sizes, times and
// errors, the screen reader's announcements, the clipboard.

import { GenwireError } from "./genwire.js";

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
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

export function announce(text) {
  $("#announcer").textContent = text;
}

export function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

/** "4.2 s", "3 min 20 s", "1 h 5 min": a wait, to the precision a person reads. */
export function formatDuration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** "14:02:07" (24-hour, the browser's own zone). */
export const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

/** A moment in history: its time alone today, with its day before today. */
export function formatWhen(ms) {
  const time = clock(ms);
  if (new Date(ms).toDateString() === new Date().toDateString()) return time;
  return `${new Date(ms).toLocaleDateString([], { month: "short", day: "numeric" })}, ${time}`;
}

export function describeError(error) {
  if (error instanceof GenwireError) {
    const fields = error.errors.map((item) => `${item.field}: ${item.message}`).join("; ");
    return fields ? `${error.message} (${fields})` : error.message;
  }
  return `Cannot reach the server (${error.message}).`;
}

/** Puts `text` on the clipboard; where the Clipboard API is refused (a page served
 * over plain HTTP from another host is no secure context), through a selection. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    // Falls through to the selection, which works wherever a click does.
  }
  const scratch = el("textarea", { class: "visually-hidden", readonly: true });
  scratch.value = text;
  document.body.append(scratch);
  scratch.select();
  const copied = document.execCommand("copy");
  scratch.remove();
  if (!copied) throw new Error("the browser refused to copy");
}

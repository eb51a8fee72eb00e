// The connection's state in words, for the header's pill and beside each job.

import { clock } from "./dom.js";

const STATE_TEXT = {
  connecting: () => "Connecting…",
  live: () => "Live",
  "catching-up": () => "Catching up…",
  reconnecting: (detail) => (detail.retryInS ? `Reconnecting in ${Math.ceil(detail.retryInS)} s…` : "Reconnecting…"),
  unreachable: (detail) => (detail.lastContact ? `Server unreachable since ${clock(detail.lastContact)}` : "Server unreachable"),
  polling: () => "Polling: streams are blocked",
};

export function connectionText(detail) {
  return (STATE_TEXT[detail.state] || STATE_TEXT.connecting)(detail);
}

export function connectionTitle(detail) {
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

// What a finished job made, as the page shows it: players, pictures, download links.

import { el, formatBytes } from "./dom.js";
import { client } from "./state.js";

/** The result's nodes: a player per video (its poster and subtitles on it), else the
 * images; then a link to download each file. `fileUrl` makes a file's address.
 * `deferPlayers`: a video with a poster shows the poster, and its player only once
 * asked (a batch of 20 clips would otherwise hold 20 players and read 20 videos). */
export function resultNodes(artifacts, fileUrl, pipeline, { deferPlayers = false } = {}) {
  const byType = (prefix) => artifacts.filter((item) => (item.type || "").startsWith(prefix));
  const poster = byType("image/")[0];
  const subtitles = artifacts.find((item) => /\.(srt|vtt)$/i.test(item.name));
  const nodes = [];
  for (const video of byType("video/")) {
    const player = () => {
      const node = el("video", { controls: true, preload: "metadata", src: fileUrl(video.url), poster: poster ? fileUrl(poster.url) : null, "aria-label": `Video: ${video.name}` });
      if (subtitles) addSubtitles(node, subtitles);
      return node;
    };
    nodes.push(deferPlayers && poster ? posterButton(fileUrl(poster.url), video.name, player) : player());
  }
  if (!byType("video/").length) {
    for (const image of byType("image/")) nodes.push(el("img", { src: fileUrl(image.url), alt: `Result of ${pipeline}: ${image.name}` }));
  }
  if (artifacts.length) {
    const links = artifacts.map((item) => el("li", {}, el("a", { href: fileUrl(item.url), download: item.name, text: `${item.name} (${formatBytes(item.size_bytes)})` })));
    nodes.push(el("ul", { class: "downloads", "aria-label": "Downloads" }, ...links));
  }
  return nodes;
}

/** A poster that becomes its video's player, playing, when pressed. */
function posterButton(src, name, player) {
  const button = el("button", { type: "button", class: "poster-play", "aria-label": `Play ${name}` }, el("img", { src, alt: "", loading: "lazy", decoding: "async" }), el("span", { class: "poster-play-sign", "aria-hidden": "true", text: "▶" }));
  button.addEventListener("click", () => {
    const node = player();
    button.replaceWith(node);
    node.focus();
    node.play().catch(() => {}); // a browser that wants a click on the player: its controls are there
  });
  return button;
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

// What the asset view shows of the outputs no view of its own takes: each proxy says how it is shown
// (`shownAs`, declared by its stage with its `label`), so a stage's new kind of output needs no code here.
import { el } from "./dom.js";
import { displayGeometry, formatBytes } from "./format.js";

// The order the generic results are laid out in; a link's presentations go to the list of files.
const PICTURES = ["image", "strip", "video", "audio"];

/** The proxies `handled` leaves, grouped by how they are shown: one picture or player per kind (its first
 *  output, in the order the API lists them), and every other output as a file. Pure: the node tests run it. */
export function planOutputs(proxies, handled = new Set()) {
  const pictures = [];
  const files = [];
  const seen = new Set();
  for (const proxy of proxies) {
    if (handled.has(proxy.type)) continue;
    if (PICTURES.includes(proxy.shownAs)) {
      if (!seen.has(proxy.type)) pictures.push(proxy);
      seen.add(proxy.type);
    } else {
      files.push(proxy);
    }
  }
  pictures.sort((a, b) => PICTURES.indexOf(a.shownAs) - PICTURES.indexOf(b.shownAs));
  return { pictures, files };
}

/** "meanLuma" → "Mean luma": a measurement's name as people read it. */
const spoken = (name) => name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/^./, (c) => c.toUpperCase()).replace(/(?<= )[A-Z](?![A-Z])/g, (c) => c.toLowerCase());

/** What the stages measured (`metadata.measurements`, by stage) as [name, value] facts: every number, text
 *  and yes/no the API returns, in its stage's order; lists and objects have views of their own. Pure. */
export function measuredFacts(measurements) {
  const facts = [];
  for (const measured of Object.values(measurements || {})) {
    for (const [name, value] of Object.entries(measured)) {
      if (typeof value === "number") facts.push([spoken(name), String(Number.isInteger(value) ? value : Number(value.toFixed(3)))]);
      else if (typeof value === "string" && value) facts.push([spoken(name), value]);
      else if (typeof value === "boolean") facts.push([spoken(name), value ? "yes" : "no"]);
    }
  }
  return facts;
}

/** The caption under a generic result: its label, and its note in brackets. */
export const captionOf = (proxy) => (proxy.note ? `${proxy.label} (${proxy.note})` : proxy.label || proxy.type);

function picture(proxy, name) {
  const label = proxy.label || proxy.type;
  const caption = el("figcaption", { text: captionOf(proxy) });
  if (proxy.shownAs === "image") {
    const image = el("img", { className: "poster", src: proxy.url, alt: `${label} of ${name}` });
    // A still is stored at its display shape: a portrait one stands upright, as tall as the column allows.
    const shape = displayGeometry(proxy);
    if (shape) image.dataset.orientation = shape.orientation;
    return el("figure", { className: "result" }, image, caption);
  }
  if (proxy.shownAs === "strip") {
    return el("figure", { className: "result wide" }, el("img", { className: "strip", src: proxy.url, alt: `${label} of ${name}` }), caption);
  }
  const player = el(proxy.shownAs, { controls: true, preload: "metadata", src: proxy.url, "aria-label": `${label} of ${name}` });
  if (proxy.shownAs === "video") player.className = "player";
  return el("figure", { className: proxy.shownAs === "video" ? "result" : "result wide" }, player, caption);
}

function fileList(files) {
  const items = files.map((proxy) => {
    const what = [proxy.resolution, proxy.format, formatBytes(proxy.sizeBytes)].filter(Boolean).join(", ");
    return el("li", {}, el("a", { href: proxy.url, text: proxy.label || proxy.type }), ` · ${what}`);
  });
  return el("details", { className: "exif files" }, el("summary", { text: `Other files (${files.length})` }), el("ul", {}, items));
}

/** The generic results of `asset`: pictures and players appended to `grid`, the list of files returned
 *  (null when there is none) for the caller to place. */
export function renderOutputs(grid, asset, { handled, name }) {
  const { pictures, files } = planOutputs(asset.proxies, handled);
  for (const proxy of pictures) grid.append(picture(proxy, name));
  return files.length ? fileList(files) : null;
}

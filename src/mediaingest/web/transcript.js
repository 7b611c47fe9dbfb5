// The interactive transcript beside the player: every word knows when it is said. The word being said is
// marked while the media plays, a click on a word seeks there, and selecting words shows the span's in and
// out timecodes — where a text-based cut would start and end.
import { $, el } from "./dom.js";
import { formatTimecode } from "./format.js";

/** The transcript document's words in order, each with the index of its segment (its paragraph). */
export function flattenWords(transcript) {
  return (transcript.segments || []).flatMap((segment, index) =>
    (segment.words || []).map((word) => ({ start: word.start, end: word.end, word: word.word, segment: index })));
}

/** The index of the word being said at `seconds`: the last one started by then; -1 before the first. */
export function wordAt(words, seconds) {
  let [low, high, found] = [0, words.length - 1, -1];
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (words[middle].start <= seconds + 1e-3) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

/** In and out points of the words from `first` to `last` (either order): the first's start, the last's end. */
export function spanTimes(words, first, last) {
  const [from, to] = first <= last ? [first, last] : [last, first];
  return { in: words[from].start, out: words[to].end };
}

/** The word span an end of a selection is in (a text node inside it, or an element and a child offset). */
function wordOf(node, offset) {
  if (!node) return null;
  const element = node.nodeType === Node.TEXT_NODE ? node.parentElement : node.childNodes[Math.min(offset, node.childNodes.length - 1)] || node;
  return element && element.closest ? element.closest(".word") : null;
}

export function buildTranscript({ transcript, media, metadata, name }) {
  const words = flattenWords(transcript);
  const spans = words.map((word, index) => el("span", { className: "word", "data-index": String(index), text: word.word }));
  const paragraphs = (transcript.segments || []).map((_, index) =>
    el("p", {}, spans.filter((span) => words[Number(span.dataset.index)].segment === index)));
  const text = el("div", {
    className: "transcript-text", tabindex: "0", role: "region", "aria-label": `Transcript of ${name}: click a word to play from it`,
  }, paragraphs);
  const selection = el("output", { className: "transcript-selection", text: "Select words to see their in and out points." });
  const section = el("section", { className: "result transcript", "aria-label": "Transcript" },
    el("h3", { text: `Transcript${transcript.language ? ` (${transcript.language})` : ""}` }), text, selection);

  let current = -1;
  const mark = (index) => {
    if (index === current) return;
    if (current >= 0) spans[current].classList.remove("current");
    current = index;
    if (current < 0) return;
    const span = spans[current];
    span.classList.add("current");
    // Keep it in view inside the panel, without scrolling the page.
    const [top, bottom] = [span.offsetTop - text.offsetTop, span.offsetTop - text.offsetTop + span.offsetHeight];
    if (top < text.scrollTop || bottom > text.scrollTop + text.clientHeight) text.scrollTop = Math.max(0, top - text.clientHeight / 3);
  };
  const follow = () => mark(wordAt(words, media.currentTime));
  media.addEventListener("timeupdate", follow);
  media.addEventListener("seeked", follow);
  text.addEventListener("click", (event) => {
    const span = event.target.closest(".word");
    const chosen = getSelection();
    if (!span || (chosen && !chosen.isCollapsed)) return; // a drag selects; only a plain click seeks
    media.currentTime = words[Number(span.dataset.index)].start;
    mark(Number(span.dataset.index));
  });
  const showSelection = () => {
    if (!section.isConnected) return document.removeEventListener("selectionchange", showSelection);
    const chosen = getSelection();
    if (!chosen || chosen.isCollapsed || !text.contains(chosen.anchorNode) || !text.contains(chosen.focusNode)) return;
    const [first, last] = [wordOf(chosen.anchorNode, chosen.anchorOffset), wordOf(chosen.focusNode, chosen.focusOffset)];
    if (!first || !last) return;
    const span = spanTimes(words, Number(first.dataset.index), Number(last.dataset.index));
    selection.dataset.in = String(span.in);
    selection.dataset.out = String(span.out);
    selection.textContent = `In ${formatTimecode(span.in, metadata)} · Out ${formatTimecode(span.out, metadata)}`
      + ` · ${(span.out - span.in).toFixed(1)} s`;
  };
  document.addEventListener("selectionchange", showSelection);
  return section;
}

/** Fetches the transcript and puts it beside the player (under it on a phone); nothing without words. */
export async function loadTranscript({ output, media, metadata, name, row }) {
  const response = await fetch(output.url);
  if (!response.ok) throw new Error(`the transcript answered ${response.status}`);
  const transcript = await response.json();
  if (!flattenWords(transcript).length) return null;
  const section = buildTranscript({ transcript, media, metadata, name });
  row.classList.add("with-transcript");
  row.append(section);
  return $(".transcript-text", section);
}

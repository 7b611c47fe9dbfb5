// Unfinished uploads that no card on this page is sending (a closed tab, another browser, the CLI): each
// holds its declared size of the quota until it expires. Listed with when it started, and releasable.
import { $, el } from "./dom.js";
import { ApiError, describeError, SessionEndedError } from "./errors.js";
import { formatBytes, formatDate } from "./format.js";

export function createReservations(app) {
  let listed = []; // the unfinished uploads the last refresh found

  async function refresh() {
    if (!app.session.token()) return;
    let page;
    try {
      page = await app.api("/api/assets?status=PENDING&pageSize=100&sort=-createdAt");
    } catch (error) {
      if (!(error instanceof SessionEndedError)) console.warn("unfinished uploads unavailable", error);
      return;
    }
    listed = page.items;
    render();
  }

  /** A card on this page took the upload (its file chosen again): no longer someone else's, at once. */
  function forget(assetId) {
    if (!listed.some((asset) => asset.id === assetId)) return;
    listed = listed.filter((asset) => asset.id !== assetId);
    render();
  }

  function render() {
    // What this page holds itself (cards, and uploads Golden Retriever brought back after a reload) is not listed.
    const here = app.uploads.heldAssetIds();
    for (const card of document.querySelectorAll("#uploads .upload[data-asset-id]")) here.add(card.dataset.assetId);
    const held = listed.filter((asset) => !here.has(asset.id));
    const reserved = held.reduce((sum, asset) => sum + asset.fileSize, 0);
    $("#reservations").hidden = held.length === 0;
    const one = held.length === 1;
    $("#reservations-summary").textContent =
      `${one ? "An upload" : `${held.length} uploads`} not sent from this page (a closed tab, another browser or the CLI) ` +
      `${one ? "holds" : "hold"} ${formatBytes(reserved)} of your quota until ${one ? "it finishes or expires" : "they finish or expire"}. ` +
      `Choose the same file again where it started to resume, or release ${one ? "it" : "them"} here.`;
    $("#reservations-list").replaceChildren(...held.map((asset) => {
      const name = asset.originalName || asset.name;
      const release = el("button", { type: "button", className: "secondary", text: "Release", "aria-label": `Release ${name}` });
      release.addEventListener("click", async () => {
        release.disabled = true;
        try {
          await app.api(`/api/assets/${encodeURIComponent(asset.id)}/upload/abort`, { method: "POST" });
          app.announce(`Released ${name}: ${formatBytes(asset.fileSize)} free again.`);
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 404)) app.notice(`Could not release “${name}”: ${describeError(error)}`);
        }
        refresh();
        app.refreshAccount().catch(() => {});
      });
      return el("li", { "data-asset-id": asset.id },
        el("span", { className: "reservation-name", text: name }),
        el("span", { className: "hint", text: `${formatBytes(asset.fileSize)} · started ${formatDate(asset.createdAt)}` }),
        release);
    }));
  }
  return { refresh, forget };
}

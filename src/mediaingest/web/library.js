// The library: a page of the person's assets with search, filters (projects too), order and pages, all
// in the address; kept current by the library's event stream, whoever uploaded (this tab, the CLI…).
import { $, el } from "./dom.js";
import { describeError, SessionEndedError } from "./errors.js";
import { followStream } from "./events.js";
import { describeProcessing, formatBytes, formatClock, formatDate, statusLabel } from "./format.js";
import { LIBRARY_DEFAULTS } from "./router.js";

const FIELDS = Object.freeze({ q: "#library-search", type: "#library-type", status: "#library-status", project: "#library-project", sort: "#library-sort" });

/** The API's query for a library route. */
export function libraryQuery(library, pageSize) {
  const params = new URLSearchParams({ page: String(library.page), pageSize: String(pageSize), sort: library.sort });
  if (library.q.trim()) params.set("q", library.q.trim());
  if (library.type) params.set("type", library.type);
  if (library.status) params.set("processingStatus", library.status);
  if (library.project.trim()) params.set("projectId", library.project.trim());
  return params.toString();
}

function badge(asset, live) {
  const text = live ? describeProcessing(live).short : statusLabel(asset);
  const state = live ? live.processingStatus : asset.processingStatus;
  return el("span", { className: `badge ${(state || "").toLowerCase()}`, text });
}

export function createLibrary(app) {
  const state = { library: { ...LIBRARY_DEFAULTS }, pageSize: 20, live: new Map(), loading: null, again: false, stream: null, total: null };

  function row(asset) {
    const name = asset.originalName || asset.name;
    const open = el("a", { href: `/assets/${encodeURIComponent(asset.id)}`, className: "name-link", text: name });
    open.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return; // a new tab: let it
      event.preventDefault();
      app.openAsset(asset.id);
    });
    // A search that matched what is said: where, and a link that plays from there.
    const said = asset.spokenMatch;
    const saidLink = said ? el("a", {
      href: `/assets/${encodeURIComponent(asset.id)}`, className: "spoken-match",
      text: `Said at ${formatClock(said.seconds)}: “${said.text.length > 90 ? `${said.text.slice(0, 89)}…` : said.text}”`,
    }) : null;
    saidLink?.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      app.openAsset(asset.id, { at: said.seconds });
    });
    return el("tr", { "data-asset-id": asset.id },
      el("td", { className: "thumb-cell" }, asset.posterUrl
        ? el("img", { className: "row-poster", src: asset.posterUrl, alt: "", loading: "lazy" })
        : el("span", { className: "row-poster placeholder", "aria-hidden": "true", text: asset.type.slice(0, 1) })),
      el("th", { scope: "row", className: "name-cell" }, open, asset.projectId ? el("span", { className: "project-tag", text: asset.projectId }) : null, saidLink,
        el("span", { className: "status-inline" }, badge(asset, state.live.get(asset.id)))), // a phone's status column
      el("td", { text: asset.durationSeconds ? formatClock(asset.durationSeconds) : "—" }),
      el("td", { text: asset.type.toLowerCase() }),
      el("td", { text: formatBytes(asset.fileSize) }),
      el("td", { className: "status-cell" }, badge(asset, state.live.get(asset.id))),
      // The column the default order sorts by: when it was added, not when its bytes finished arriving.
      el("td", { text: formatDate(asset.createdAt) }),
      el("td", { className: "actions" },
        el("button", { type: "button", className: "danger", "aria-label": `Delete ${name}`, onclick: () => app.deleteAsset(asset) }, "Delete")));
  }

  function render(page) {
    $("#assets-body").replaceChildren(...page.items.map(row));
    // Projects seen so far, offered as people type one (in the library filter and for uploads).
    const known = new Set([...document.querySelectorAll("#project-names option")].map((option) => option.value));
    for (const project of page.items.map((asset) => asset.projectId).filter(Boolean)) {
      if (!known.has(project)) $("#project-names").append(el("option", { value: project }));
      known.add(project);
    }
    const { q, type, status, project } = state.library;
    const filtered = Boolean(q.trim() || type || status || project.trim());
    $("#assets-table").hidden = page.items.length === 0;
    $("#assets-empty").hidden = page.items.length !== 0;
    $("#assets-empty").textContent = filtered ? "No asset matches." : "No assets yet: upload something above.";
    const sortName = $("#library-sort").selectedOptions[0]?.textContent.toLowerCase() || "newest first";
    $("#assets-caption").textContent = `Your assets, ${sortName}`;
    const pages = Math.max(1, Math.ceil(page.total / page.pageSize));
    $("#library-pager").hidden = pages <= 1;
    $("#page-info").textContent = `Page ${page.page} of ${pages} · ${page.total} assets`;
    $("#page-prev").disabled = page.page <= 1;
    $("#page-next").disabled = page.page >= pages;
  }

  /** Loads the current page; bursts (several uploads finishing together) coalesce into one more request. */
  function refresh() {
    if (!app.session.token()) return Promise.resolve();
    if (state.loading) {
      state.again = true;
      return state.loading;
    }
    state.loading = (async () => {
      do {
        state.again = false;
        try {
          const [page] = await Promise.all([app.api(`/api/assets?${libraryQuery(state.library, state.pageSize)}`), app.refreshAccount()]);
          if (!state.again) render(page); // a newer query (another filter, a deletion) is on its way: show that one
        } catch (error) {
          if (!(error instanceof SessionEndedError)) app.notice(`Could not load your assets: ${describeError(error)}`);
        }
      } while (state.again);
      state.loading = null;
    })();
    return state.loading;
  }

  /** A status from the stream: the row's badge follows it; an asset not on this page reloads the page. */
  function onAssetEvent(status) {
    state.live.set(status.assetId, status);
    const cells = document.querySelectorAll(`#assets-body tr[data-asset-id="${CSS.escape(status.assetId)}"] :is(.status-cell, .status-inline)`);
    const settled = ["READY", "FAILED"].includes(status.processingStatus);
    if (cells.length && !settled) for (const cell of cells) cell.replaceChildren(badge({}, status));
    else refresh(); // new, or finished: its poster and duration come with the listing
  }

  function follow() {
    if (state.stream) return;
    state.stream = new AbortController();
    app.watchers.add(state.stream);
    followStream({
      url: "/api/assets/events", session: app.session, signal: state.stream.signal,
      onEvent(name, data) {
        if (name === "asset") onAssetEvent(data);
        else if (name === "count") { // the first is what the listing already showed
          if (state.total !== null && state.total !== data.total) refresh();
          state.total = data.total;
        }
        return undefined;
      },
    }).finally(() => { state.stream = null; });
  }

  /** Shows a library route: the controls take its values, and the page loads. */
  function show(library) {
    state.library = { ...LIBRARY_DEFAULTS, ...library };
    for (const [key, selector] of Object.entries(FIELDS)) $(selector).value = state.library[key];
    follow();
    return refresh();
  }

  function changed({ resetPage = true } = {}) {
    for (const [key, selector] of Object.entries(FIELDS)) state.library[key] = $(selector).value;
    if (resetPage) state.library.page = 1;
    app.libraryChanged(state.library);
    refresh();
  }

  function wire() {
    let typing = null;
    for (const selector of [FIELDS.q, FIELDS.project]) {
      $(selector).addEventListener("input", () => { // search as people type, once they pause
        clearTimeout(typing);
        typing = setTimeout(() => changed(), 250);
      });
    }
    $("#library-filters").addEventListener("submit", (event) => event.preventDefault());
    for (const selector of [FIELDS.type, FIELDS.status, FIELDS.sort]) $(selector).addEventListener("change", () => changed());
    $("#page-prev").addEventListener("click", () => { state.library.page = Math.max(1, state.library.page - 1); changed({ resetPage: false }); });
    $("#page-next").addEventListener("click", () => { state.library.page += 1; changed({ resetPage: false }); });
    $("#refresh").addEventListener("click", () => refresh());
  }

  return { show, refresh, wire, current: () => ({ ...state.library }), removeRow: (id) => $(`#assets-body tr[data-asset-id="${CSS.escape(id)}"]`)?.remove() };
}

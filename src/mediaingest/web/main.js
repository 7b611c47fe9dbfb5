// The page's entry point: builds the one `app` object every module gets (no module keeps state of its
// own), signs in, routes between the workspace and an asset's page, and wires the controls.
import { createApi } from "./api.js";
import { $, focusHeading } from "./dom.js";
import { describeError, SessionEndedError } from "./errors.js";
import { formatBytes } from "./format.js";
import { createLibrary } from "./library.js";
import { createReservations } from "./reservations.js";
import { createRouter } from "./router.js";
import { createSession, wireSignIn } from "./session.js";
import { createUploads } from "./uploads.js";
import { createViewer } from "./viewer.js";

const PROJECT_KEY = "mediaingest.project";

const app = {
  watchers: new Set(), // AbortControllers of open event streams, closed on sign-out
  notice: (text) => { $("#notice").textContent = text; },
  announce: (text) => { $("#announcer").textContent = text; },
};
app.session = createSession(sessionStorage, (message) => showSignIn(message));
app.api = createApi(app.session);
app.library = createLibrary(app);
app.viewer = createViewer(app);
app.uploads = createUploads(app);
app.reservations = createReservations(app);
app.router = createRouter(show);
// `at`: where to start playing (a search hit in what is said).
app.openAsset = (assetId, { at } = {}) => {
  app.viewer.startAt(at);
  app.router.go({ assetId, library: app.library.current() });
};
app.libraryChanged = (library) => app.router.replace({ assetId: null, library });

/** The header: who is signed in, their plan, and how much of its quota is used. */
app.refreshAccount = async () => {
  // The unfinished uploads first: the label says the first load is done only once both are.
  const [me] = await Promise.all([app.api("/api/me"), app.reservations.refresh()]);
  const used = me.quota.storedBytes + me.quota.reservedBytes;
  const who = me.email || `user ${me.userId.slice(0, 8)}`;
  $("#account-label").textContent =
    `${who} · ${me.plan.charAt(0)}${me.plan.slice(1).toLowerCase()} plan · ${formatBytes(used)} of ${formatBytes(me.quota.limitBytes)} used`;
  $("#account-label").title = `${formatBytes(me.quota.availableBytes)} free for new uploads`;
};

app.deleteAsset = async (asset) => {
  const name = asset.originalName || asset.name;
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Delete “${name}”? The file and everything made from it will be removed.`)) return;
  try {
    await app.api(`/api/assets/${encodeURIComponent(asset.id)}`, { method: "DELETE" });
    app.library.removeRow(asset.id);
    for (const card of document.querySelectorAll(`.upload[data-asset-id="${CSS.escape(asset.id)}"]`)) {
      card.dataset.state = "deleted";
      $(".upload-status", card).textContent = `“${name}” was deleted.`;
      $(".upload-results", card).replaceChildren();
    }
    app.announce(`Deleted ${name}.`);
    if (app.viewer.current() === asset.id) app.router.go({ assetId: null, library: app.library.current() });
    app.library.refresh();
  } catch (error) {
    if (!(error instanceof SessionEndedError)) app.notice(`Could not delete “${name}”: ${describeError(error)}`);
  }
};

function showSignIn(message) {
  for (const controller of app.watchers) controller.abort();
  app.watchers.clear();
  app.uploads.retire();
  app.viewer.close();
  $("#workspace").hidden = true;
  $("#account").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message || "";
  $("#token-input").value = "";
  $("#token-input").focus();
}

/** Shows what the address says: an asset's page, or the workspace with the library's filters. */
function show(route, { initial = false } = {}) {
  if (!app.session.token()) return showSignIn("");
  $("#sign-in").hidden = true;
  $("#workspace").hidden = false;
  $("#account").hidden = false;
  const onAsset = Boolean(route.assetId);
  $("#upload-panel").hidden = onAsset;
  $("#library-panel").hidden = onAsset;
  if (onAsset) {
    if (app.viewer.current() !== route.assetId) app.viewer.open(route.assetId, { focus: !initial });
  } else {
    const wasOnAsset = app.viewer.current() !== null;
    app.viewer.close();
    if (wasOnAsset) focusHeading($("#assets-title"));
  }
  app.library.show(route.library);
}

function startWorkspace() {
  $("#account-label").textContent = "Signed in";
  app.router.start();
  // Golden Retriever brings back this user's uploads from before a reload or a sign-out.
  app.uploads.uploader().catch((error) => console.warn("the uploader could not start", error));
}

function wire() {
  wireSignIn((token) => {
    app.session.start(token);
    startWorkspace();
    focusHeading($("#upload-title")); // not the body: where the work starts
  });
  $("#sign-out").addEventListener("click", () => app.session.expire("You are signed out."));
  app.library.wire();
  $("#clear-finished").addEventListener("click", () => {
    for (const card of document.querySelectorAll("#uploads .upload")) {
      if (["ready", "failed", "rejected", "deleted"].includes(card.dataset.state)) $(".dismiss", card).click();
    }
  });
  $("#viewer-close").addEventListener("click", () => app.router.go({ assetId: null, library: app.library.current() }));
  const project = $("#project-input");
  project.value = localStorage.getItem(PROJECT_KEY) || ""; // remembered: the next files go to the same project
  project.addEventListener("change", () => localStorage.setItem(PROJECT_KEY, project.value.trim()));
  const send = (files) => {
    app.notice("");
    app.uploads.add(files, project.value.trim() || null);
  };
  const input = $("#file-input");
  input.addEventListener("change", () => {
    send(input.files);
    input.value = ""; // choosing the same file again still fires `change`
  });
  const zone = $("#dropzone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    send(event.dataTransfer && event.dataTransfer.files);
  });
  // A file dropped beside the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  // Leaving while bytes are on their way loses at most the parts in flight (a reload resumes), but it stops the upload: ask.
  window.addEventListener("beforeunload", (event) => {
    if (app.uploads.sending()) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  if (app.session.token()) startWorkspace();
  else showSignIn("");
}

wire();

// Addresses: `/` is the workspace (uploads and the library, its filters in the query string) and
// `/assets/{id}` an asset's page. Back and forward move between them; a reload keeps the place.

// The library's filters as they appear in an address, with the value each has when left out.
export const LIBRARY_DEFAULTS = Object.freeze({ q: "", type: "", status: "", project: "", sort: "-createdAt", page: 1 });

/** `{ assetId, library }` from a path and a query string; anything unknown falls back to the defaults. */
export function parseRoute(pathname, search) {
  const params = new URLSearchParams(search);
  const library = { ...LIBRARY_DEFAULTS };
  for (const key of Object.keys(LIBRARY_DEFAULTS)) {
    const value = params.get(key);
    if (value === null || value === "") continue;
    library[key] = key === "page" ? Math.max(1, Number.parseInt(value, 10) || 1) : value;
  }
  const match = /^\/assets\/([0-9A-Za-z-]{1,64})\/?$/.exec(pathname);
  return { assetId: match ? match[1] : null, library };
}

/** The address of a route: only the filters that differ from their defaults are written. */
export function formatRoute({ assetId, library }) {
  const params = new URLSearchParams();
  for (const [key, fallback] of Object.entries(LIBRARY_DEFAULTS)) {
    const value = library && library[key];
    if (value !== undefined && value !== null && String(value) !== String(fallback)) params.set(key, String(value));
  }
  const query = params.toString();
  return `${assetId ? `/assets/${encodeURIComponent(assetId)}` : "/"}${query ? `?${query}` : ""}`;
}

/** Calls `onRoute(route, { initial, popped })` now and on every back/forward; `go` pushes a new address,
 * `replace` rewrites the current one (filters typed letter by letter are not a history each). */
export function createRouter(onRoute) {
  const current = () => parseRoute(location.pathname, location.search);
  window.addEventListener("popstate", () => onRoute(current(), { popped: true }));
  return {
    current,
    start: () => onRoute(current(), { initial: true }),
    go(route) {
      const url = formatRoute(route);
      if (url !== location.pathname + location.search) history.pushState(null, "", url);
      onRoute(current(), {});
    },
    replace(route) {
      history.replaceState(null, "", formatRoute(route));
    },
  };
}

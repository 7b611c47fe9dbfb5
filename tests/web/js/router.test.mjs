import assert from "node:assert/strict";
import { test } from "node:test";

import { formatRoute, LIBRARY_DEFAULTS, parseRoute } from "../../../src/mediaingest/web/router.js";

test("an asset's page and the library's filters have addresses", () => {
  assert.deepEqual(parseRoute("/assets/4ed1c2d0-aaaa", ""), { assetId: "4ed1c2d0-aaaa", library: { ...LIBRARY_DEFAULTS } });
  const route = parseRoute("/", "?q=take&type=VIDEO&project=launch&sort=name&page=2");
  assert.equal(route.assetId, null);
  assert.deepEqual(route.library, { q: "take", type: "VIDEO", status: "", project: "launch", sort: "name", page: 2 });
  assert.equal(formatRoute(route), "/?q=take&type=VIDEO&project=launch&sort=name&page=2");
});

test("defaults are left out, and nonsense falls back to them", () => {
  assert.equal(formatRoute({ assetId: null, library: { ...LIBRARY_DEFAULTS } }), "/");
  assert.equal(formatRoute({ assetId: "abc", library: { ...LIBRARY_DEFAULTS, q: "x y" } }), "/assets/abc?q=x+y");
  assert.equal(parseRoute("/", "?page=-3").library.page, 1);
  assert.equal(parseRoute("/assets/../etc", "").assetId, null);
});

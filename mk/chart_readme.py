"""Writes the values reference of the chart's README.md from its values.schema.json: `make chart-readme`.

Every value the schema knows gets a row: its path, its type with the schema's constraints, its default
(values.yaml) and what it does (the schema's `description`, else the comment above the key in
values.yaml). The rows replace what lies between the README's `<!-- values:start -->` and
`<!-- values:end -->` markers; the rest of the README is written by hand. tests/operator/
test_chart_observability.py fails while README.md and the schema disagree.

    .venv/bin/python mk/chart_readme.py            # rewrite README.md
    .venv/bin/python mk/chart_readme.py --check    # exit 1 when it differs
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "mediaingest"
START, END = "<!-- values:start -->", "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+|\"[^\"]+\"):(?:\s|$)")


def comments(values_yaml: str) -> dict[tuple[str, ...], str]:
    """The comment block right above each key of values.yaml, by the key's path."""
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
        elif stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
        elif match := _KEY.match(line):
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = (*(key for _, key in stack), match["key"].strip('"'))
            if pending:
                found[path] = " ".join(pending)
            pending = []
            stack.append((indent, path[-1]))
        else:
            pending = []
    return found


def type_of(schema: dict[str, Any]) -> str:
    """The schema's type and constraints, as a reader wants them."""
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(schema.get("items"), dict):
        text = f"array of {type_of(schema['items'])}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"map of {type_of(schema['additionalProperties'])}"
    bounds = [
        f"{symbol} {schema[key]}"
        for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("minItems", "at least"))
        if key in schema
    ]
    if "minLength" in schema:
        bounds.append("not empty")
    if "pattern" in schema:
        bounds.append(f"matching `{schema['pattern']}`")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def rows(schema: dict[str, Any], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path, schema) of every value: each property, and an object itself where it takes other keys too."""
    properties = schema.get("properties")
    if not properties:
        return [(path, schema)]
    found = [(path, schema)] if path and schema.get("additionalProperties") is not False else []
    for key, child in properties.items():
        found += rows(child, (*path, key))
    return found


def default_of(values: Any, path: tuple[str, ...]) -> str:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return ""
        values = values[key]
    return f"`{json.dumps(values, ensure_ascii=False)}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_values(root: Path = ROOT) -> str:
    chart = root / CHART.relative_to(ROOT)
    schema = json.loads((chart / "values.schema.json").read_text())
    values_text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(values_text)
    described = comments(values_text)
    lines = [START, "", "Generated from `values.schema.json` by `make chart-readme` (mk/chart_readme.py).", ""]
    for top, top_schema in schema["properties"].items():
        lines += [f"### `{top}`", ""]
        found = rows(top_schema, (top,))
        if (top,) in described and found[0][0] != (top,):  # a section's comment, above its table
            lines += [cell(described[(top,)]), ""]
        lines += ["| Value | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for path, node in found:
            description = node.get("description") or described.get(path, "")
            lines.append(
                f"| `{'.'.join(path)}` | {cell(type_of(node))} | {cell(default_of(values, path))} | {cell(description)} |"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def render(root: Path = ROOT) -> str:
    readme = (root / CHART.relative_to(ROOT) / "README.md").read_text()
    before, _, rest = readme.partition(START)
    _, found, after = rest.partition(END)
    if not found:
        raise SystemExit(f"README.md: no {START} … {END} markers")
    return before + render_values(root) + after


def main(argv: list[str]) -> int:
    path = CHART / "README.md"
    text = render()
    if path.read_text() == text:
        return 0
    if "--check" in argv:
        print(f"{path.relative_to(ROOT)}: its values table differs from values.schema.json (run make chart-readme)")
        return 1
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Writes the stage registry into the files kubectl and helm read without Python: `make crd-sync`.

The CRD holds the stage names a MediaAsset's plan may list (and how many; written to crds/ and to the
chart's crds/, which Helm installs before any template), the chart's values.yaml
each stage's Job size, and values.schema.json which stages may be sized. All three follow from the
registered StageSpecs (pipeline/registry.py, plus the modules of STAGE_MODULES when it is set), so a
new stage is its module and its registry entry, then this script; tests/test_stage_registry.py fails
while they differ.

    .venv/bin/python mk/sync_stages.py            # rewrite the files
    .venv/bin/python mk/sync_stages.py --check    # exit 1 and name the files that differ
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRD = Path("crds/mediaasset.yaml")
# The chart's byte-identical copy, in the folder Helm applies before rendering any template.
CHART_CRD = Path("charts/mediaingest/crds/mediaasset.yaml")
VALUES = Path("charts/mediaingest/values.yaml")
VALUES_SCHEMA = Path("charts/mediaingest/values.schema.json")

# The plan's list in the CRD: `stages:` under spec, an array whose items are an enum of stage names.
_PLAN_LIST = re.compile(
    r"(?P<head>\n(?P<indent> +)stages:\n(?P=indent)  type: array\n(?:(?P=indent)  .*\n)*?)"
    r"(?P=indent)  maxItems: \d+\n(?P<middle>(?:(?P=indent)  .*\n)*?)(?P<items> +)enum: \[[^\]\n]*\]\n"
)
# The `stages:` map of values.yaml's top-level `jobs:`, up to the first line indented less than it.
_VALUES_BLOCK = re.compile(r"(?m)^jobs:\n(?:  .*\n|\n)*?  stages:\n(?P<block>(?:    .*\n)+)")


def _quantity(value: str) -> str:
    """A quantity as values.yaml writes it: quoted when YAML would read it as a number."""
    return f'"{value}"' if re.fullmatch(r"[0-9.]+", value) else value


def render(root: Path = ROOT) -> dict[Path, str]:
    """Each synced file's text as the registry has it."""
    from mediaingest.config import Settings
    from mediaingest.operator.settings import default_stage_configs
    from mediaingest.pipeline.registry import load_stage_modules, stage_names

    load_stage_modules(Settings().stage_modules)
    names = stage_names()
    configs = default_stage_configs()

    def plan_list(match: re.Match[str]) -> str:
        max_items = f"{match['indent']}  maxItems: {len(names)}\n"
        return f"{match['head']}{max_items}{match['middle']}{match['items']}enum: [{', '.join(names)}]\n"

    crd, found = _PLAN_LIST.subn(plan_list, (root / CRD).read_text())
    if found != 1:
        raise SystemExit(f"{CRD}: found {found} stage lists under spec, expected 1")

    lines: list[str] = []
    for name, config in configs.items():
        lines.append(f"    {name}:")
        for field in ("requests", "limits"):
            quantities = ", ".join(f"{key}: {_quantity(value)}" for key, value in getattr(config, field).items())
            lines.append(f"      {field}: {{{quantities}}}")
        lines.append(f"      scratchSizeLimit: {_quantity(config.scratch_size_limit)}")
        lines.append(f"      activeDeadlineSeconds: {config.active_deadline_seconds}")
        lines.append(f"      deadlineSecondsPerMediaSecond: {config.deadline_seconds_per_media_second:g}")
        lines.append(f"      memoryCap: {_quantity(config.memory_cap)}")
    values = (root / VALUES).read_text()
    match = _VALUES_BLOCK.search(values)
    if match is None:
        raise SystemExit(f"{VALUES}: no jobs.stages block")
    values = values[: match.start("block")] + "\n".join(lines) + "\n" + values[match.end("block") :]

    schema = json.loads((root / VALUES_SCHEMA).read_text())
    stages = schema["properties"]["jobs"]["properties"]["stages"]
    one_stage = next(iter(stages["properties"].values()))  # every stage is sized alike
    stages["properties"] = {name: one_stage for name in names}
    schema["properties"]["stagePlacement"]["propertyNames"] = {"enum": names}
    schema_text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return {CRD: crd, CHART_CRD: crd, VALUES: values, VALUES_SCHEMA: schema_text}


def main(argv: list[str]) -> int:
    stale = {path: text for path, text in render().items() if (ROOT / path).read_text() != text}
    if "--check" in argv:
        for path in stale:
            print(f"{path}: differs from the stage registry (run make crd-sync)")
        return 1 if stale else 0
    for path, text in stale.items():
        (ROOT / path).write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

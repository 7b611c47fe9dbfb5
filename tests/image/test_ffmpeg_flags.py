"""The images' ffmpeg is built with only what the pipeline uses (worker-image/ffmpeg-configure.flags):
every filter, encoder and output format named in src/mediaingest/pipeline/ must be enabled there.

Read from the code's syntax tree: `filter_spec("name", …)` calls and the plain filter names given to
`FilterGraph.chain`, and the string after "-c:v", "-c:a" and "-f" in argument lists (and `f=` in tee
slaves). The smoke test (test_stage_image.py) runs the real stages in the image besides.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "src" / "mediaingest" / "pipeline"
FLAGS = REPO / "worker-image" / "ffmpeg-configure.flags"
# ffmpeg -f takes a format name; configure takes the muxer's, which differ for raw PCM.
MUXER_OF_FORMAT = {"s16le": "pcm_s16le"}


def enabled(kind: str) -> set[str]:
    names: set[str] = set()
    for line in FLAGS.read_text().splitlines():
        if line.startswith(f"--enable-{kind}="):
            names |= set(line.split("=", 1)[1].split(","))
    return names


def _strings(nodes: list[ast.expr]) -> list[str | None]:
    return [node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None for node in nodes]


def used_by_pipeline() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {"filter": set(), "encoder": set(), "muxer": set()}
    for path in PIPELINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if name == "filter_spec" and (first := _strings(node.args[:1])) and first[0]:
                    used["filter"].add(first[0])
                if name == "chain" and len(node.args) > 1 and isinstance(node.args[1], ast.List | ast.BoolOp):
                    filters = node.args[1].elts if isinstance(node.args[1], ast.List) else []
                    used["filter"] |= {s for s in _strings(filters) if s}
                    if isinstance(node.args[1], ast.BoolOp):  # `base or ["null"]`
                        for value in node.args[1].values:
                            if isinstance(value, ast.List):
                                used["filter"] |= {s for s in _strings(value.elts) if s}
            if isinstance(node, ast.List):
                items = _strings(node.elts)
                for option, value in itertools.pairwise(items):
                    if option in ("-c:v", "-c:a") and value:
                        used["encoder"].add(value.replace("-", "_"))
                    if option == "-f" and value:
                        used["muxer"].add(MUXER_OF_FORMAT.get(value, value))
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                used["muxer"] |= {MUXER_OF_FORMAT.get(f, f) for f in re.findall(r"\[f=(\w+)", node.value)}
            if isinstance(node, ast.Dict):  # the HLS slave's options: {"f": "hls", …}
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "f" and isinstance(value, ast.Constant):
                        used["muxer"].add(str(value.value))
    return used


def test_the_reader_finds_what_the_stages_are_known_to_use() -> None:
    used = used_by_pipeline()
    assert {"zscale", "tonemap", "scdet", "ebur128", "showspectrumpic", "null", "nullsink"} <= used["filter"]
    assert {"libx264", "libvpx_vp9", "aac", "libopus", "mjpeg", "png"} <= used["encoder"]
    assert {"mp4", "webm", "hls", "tee", "pcm_s16le"} <= used["muxer"]


def test_ffmpeg_is_configured_with_everything_the_pipeline_uses() -> None:
    used = used_by_pipeline()
    for kind in ("filter", "encoder", "muxer"):
        missing = used[kind] - enabled(kind)
        assert not missing, f"worker-image/ffmpeg-configure.flags lacks the {kind}s {sorted(missing)}"


def test_only_local_files_and_pipes_and_no_devices() -> None:
    flags = set(FLAGS.read_text().split())
    assert {"--disable-network", "--disable-devices", "--disable-autodetect", "--disable-protocols"} <= flags
    assert enabled("protocol") == {"file", "pipe"}

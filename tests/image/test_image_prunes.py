"""worker-image/install-python.sh removes what the images never import; these keep its reasons true.

- the kubernetes client is not installed at all (33 MB of the main image): operator/kube.py makes the
  few REST calls mediaingest needs over httpx, with kopf's login.
- botocore's service models other than S3, STS and SSO: mediaingest builds S3 clients only (STS and SSO
  are how botocore gets credentials from IRSA and from profiles).
"""

from __future__ import annotations

import ast
from pathlib import Path

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

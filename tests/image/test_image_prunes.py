"""worker-image/install-python.sh removes what the images never import; these keep its reasons true.

- kubernetes/aio, the client's asyncio twin: neither mediaingest nor kopf imports it.
- botocore's service models other than S3, STS and SSO: mediaingest builds S3 clients only (STS and SSO
  are how botocore gets credentials from IRSA and from profiles).
"""

from __future__ import annotations

import ast
import importlib.util
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


def test_nothing_imports_the_kubernetes_asyncio_client() -> None:
    kopf = importlib.util.find_spec("kopf")
    assert kopf is not None and kopf.origin is not None
    for root in (SRC, Path(kopf.origin).parent):
        assert not {name for name in _imports(root) if name.startswith("kubernetes.aio")}, root


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

"""The stage image installs mediaingest's core dependencies only (no `server` extra): `run-stage` must
work with nothing else.

The packages the `server` extra adds (and theirs, unless the core needs them too) are worked out from
the installed distributions' metadata, and a stage pod runs with every module they provide hidden: an
import of any of them on the way from `mediaingest run-stage` to READY fails the pod.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from fixtures.kube import ThreadedApiServer
from fixtures.live_server import LiveServerFactory
from fixtures.stage_pods import (
    PodLauncher,
    PodProcess,
    pod_token,
    run_pod,
    run_to_ready,
    start_attempts,
    uploaded_video,
)
from mediaingest.models.enums import Stage

# Runs the CLI as the console script does, after a finder that refuses the hidden modules.
HIDING_MAIN = """
import sys
from importlib.abc import MetaPathFinder

HIDDEN = frozenset(sys.argv.pop(1).split(","))

class NotInTheStageImage(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"{name} is not installed in the stage image", name=name)
        return None

sys.meta_path.insert(0, NotInTheStageImage())
sys.argv[0] = "mediaingest"
from mediaingest.cli import main
sys.exit(main())
"""


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _requires(dist: str, extra: str | None = None) -> list[str]:
    """`dist`'s requirements (without markers): the unconditional ones, or those of one extra."""
    found = []
    for requirement in metadata.requires(dist) or []:
        spec, _, marker = requirement.partition(";")
        in_extra = re.search(r"extra == ['\"]([^'\"]+)['\"]", marker)
        if (in_extra.group(1) if in_extra else None) == extra:
            found.append(spec)
    return found


def _closure(requirements: Iterable[str]) -> set[str]:
    """The distributions `requirements` pull in, with the extras they name (`uvicorn[standard]`)."""
    seen: set[tuple[str, str | None]] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        name = _name(requirement)
        extras = [None, *(e.strip() for group in re.findall(r"\[([^\]]+)\]", requirement) for e in group.split(","))]
        for extra in extras:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            with contextlib.suppress(metadata.PackageNotFoundError):  # one for another platform or Python
                pending += _requires(name, extra)
    return {name for name, _ in seen}


def server_only_modules() -> set[str]:
    core = _closure(_requires("mediaingest"))
    server_only = _closure(_requires("mediaingest", "server")) - core
    modules = set()
    for module, dists in metadata.packages_distributions().items():
        if {d.lower().replace("_", "-") for d in dists} <= server_only:
            modules.add(module)
    return modules


def test_the_server_extra_is_what_the_stage_image_leaves_out() -> None:
    hidden = server_only_modules()
    # What the stage image must not carry, by the issue's own list: a database driver, boto3, Kubernetes (kopf).
    assert {"psycopg", "boto3", "botocore", "kopf", "fastapi", "uvicorn", "alembic"} <= hidden
    # And what it needs stays: the stage code's own imports.
    assert not {"httpx", "pydantic", "sqlalchemy", "PIL", "typer", "structlog"} & hidden


def _core_only(hidden: set[str]) -> PodLauncher:
    def launch(args: Sequence[str], *, scratch: Path) -> PodProcess:
        argv = [sys.executable, "-c", HIDING_MAIN, ",".join(sorted(hidden)), *args]
        return PodProcess(argv, str(scratch), {"PATH": os.environ["PATH"]})

    return launch


def test_run_stage_takes_a_video_to_ready_without_the_server_packages(
    live_server_factory: LiveServerFactory, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, executor="kubernetes")
    asset_id, headers = uploaded_video(server, small_video)
    launcher = _core_only(server_only_modules())
    detail = run_to_ready(server, threaded_apiserver, tmp_path, asset_id=asset_id, headers=headers, launcher=launcher)
    assert detail["processingStatus"] == "READY"
    assert {"VIDEO", "POSTER", "WAVEFORM"} <= {proxy["type"] for proxy in detail["proxies"]}


def test_a_hidden_module_fails_the_pod(
    live_server_factory: LiveServerFactory, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    """The hiding is real: hide something the stage path does import, and the pod cannot start."""
    server = live_server_factory(worker=False, executor="kubernetes")
    asset_id, _ = uploaded_video(server, small_video)
    probe = start_attempts(server)[(asset_id, Stage("probe"))]
    token = pod_token(threaded_apiserver, server, probe)
    refused = run_pod(server, tmp_path, attempt=probe, token=token, launcher=_core_only({"httpx"}))
    assert refused.returncode != 0
    assert "httpx is not installed in the stage image" in refused.stderr

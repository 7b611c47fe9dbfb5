"""`mediaingest upload FILE… [--wait]` and `mediaingest assets list|show|delete`: the API from a shell.

The server and the token come from --server/--token or MEDIAINGEST_SERVER/MEDIAINGEST_TOKEN. Progress
and messages go to stderr, results to stdout (`--json` for scripts). Exit status: 0 when everything
worked, 1 when an upload or an asset failed, 2 for bad usage.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from mediaingest.assets.schemas import (
        AssetDetail,
        AssetPage,
        AssetStatus,
        AssetSummary,
        JobOut,
        MetadataOut,
        ProxyOut,
    )
    from mediaingest.assets.timeline_schemas import ClipCreated
    from mediaingest.client.api import MediaIngestClient
    from mediaingest.client.resume import ResumeStore
    from mediaingest.client.transfer import TransferPlan

DEFAULT_SERVER = "http://127.0.0.1:8000"
SHORT_ID = 8  # characters of an id in tables; unique among a person's assets in practice
assets_app = typer.Typer(help="List, show and delete your assets on a mediaingest server.", no_args_is_help=True)

Server = Annotated[
    str, typer.Option("--server", envvar="MEDIAINGEST_SERVER", help="The service's base URL.", show_default=True)
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="MEDIAINGEST_TOKEN", help="API token (mi_…) or JWT.", show_default=False),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON instead of a summary.")]


def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    return Console(), Console(stderr=True)


@contextmanager
def _client(server: str, token: str | None, **kwargs: Any) -> Iterator[MediaIngestClient]:
    from mediaingest.client.api import MediaIngestClient
    from mediaingest.client.errors import ClientError, describe_error

    if not token:
        typer.echo("No token: pass --token or set MEDIAINGEST_TOKEN.", err=True)
        raise typer.Exit(2)
    try:
        with MediaIngestClient(server, token, **kwargs) as client:
            yield client
    except ClientError as error:
        typer.echo(f"Error: {describe_error(error)}", err=True)
        raise typer.Exit(1) from None


def _dump(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _stage_text(status: AssetStatus) -> str:
    if status.processing_status.value in ("READY", "FAILED"):
        return status.processing_status.value.lower()
    job = status.current_job
    if job is None or job.status.value == "COMPLETED":
        return "waiting for a worker"
    done = sum(item.status.value == "COMPLETED" for item in status.jobs)
    label = job.label or job.type  # the server's words for the stage, from its registry
    return f"{label[:1].lower()}{label[1:]} ({done}/{len(status.jobs)} done)"


def _summary(console: Console, detail: AssetDetail) -> None:
    from rich.markup import escape

    console.print(f"[bold]{escape(detail.original_name)}[/bold]  [dim]{detail.id}[/dim]")
    console.print("  " + " · ".join(_asset_facts(detail)))
    media = _media_facts(detail.metadata) if detail.metadata is not None else []
    if media:
        console.print("  " + " · ".join(media))
    if detail.error:
        console.print(f"  [red]{escape(detail.error)}[/red]")
    if detail.proxies:
        console.print(f"  derived: {escape(_derived_files(detail.proxies))}")


def _state(asset: AssetSummary) -> str:
    """The upload status until the bytes are in, then the processing status."""
    return asset.processing_status.value if asset.upload_status.value == "UPLOADED" else asset.upload_status.value


def _asset_facts(detail: AssetDetail) -> list[str]:
    """Kind, size, type and state (coloured), and the project if it has one."""
    from rich.markup import escape

    from mediaingest.client.errors import format_bytes

    state = _state(detail)
    colour = {"READY": "green", "FAILED": "red"}.get(state, "yellow")
    facts = [detail.type.value.lower(), format_bytes(detail.file_size), detail.mime_type, f"[{colour}]{state}[/]"]
    if detail.project_id:
        facts.append(f"project {escape(detail.project_id)}")
    return facts


def _media_facts(meta: MetadataOut) -> list[str]:
    """Picture size and rate, duration, codecs: what the probe found, as far as it applies."""
    media = []
    if meta.width and meta.height:
        media.append(f"{meta.width}×{meta.height}" + (f" @ {meta.fps:g} fps" if meta.fps else ""))
    if meta.duration_seconds:
        media.append(f"{meta.duration_seconds:.1f} s")
    codecs = "/".join(filter(None, (meta.video_codec, meta.audio_codec)))
    if codecs:
        media.append(codecs)
    return media


def _derived_files(proxies: list[ProxyOut]) -> str:
    """Each derived file's kind, with its resolution where it has one."""
    return ", ".join(
        proxy.type.lower().replace("_", " ") + (f" {proxy.resolution}" if proxy.resolution else "") for proxy in proxies
    )


# --- upload -------------------------------------------------------------------------------------------
def upload(
    files: Annotated[list[Path], typer.Argument(help="Video, audio or image files.", exists=True, dir_okay=False)],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the ingestion until READY or FAILED.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    project: Annotated[str | None, typer.Option("--project", help="Project id to file the assets under.")] = None,
    mime_type: Annotated[
        str | None, typer.Option("--mime-type", help="Declared type (default: from the name, else the bytes).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=16, help="Parts uploaded at once (multipart).")] = 4,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 3600.0,
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset", help="Resume this asset's interrupted upload (one FILE; its stored parts are checked)."
        ),
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Upload files straight to storage (big ones in parallel parts), confirm, and print each asset.

    An interrupted upload (Ctrl-C, a lost connection, a killed process) resumes when the same command
    runs again: only the parts storage does not hold yet are sent.
    """
    from mediaingest.client.resume import ResumeStore

    out, err = _consoles()

    def on_retry(part: int, attempt: int, why: str) -> None:
        err.print(f"  retrying part {part} after attempt {attempt}: {why}")

    if asset is not None and len(files) != 1:
        err.print("[red]✗[/red] --asset resumes one upload: give exactly one FILE.")
        raise typer.Exit(2)
    resume = ResumeStore()
    with _client(server, token, concurrency=concurrency, on_retry=on_retry) as client:
        sent = _send_files(client, err, files, asset=asset, mime_type=mime_type, project_id=project, resume=resume)
        failed = bool(sent.errors)
        if wait and sent.uploaded:
            failed = _follow_all(client, err, sent.uploaded, timeout) or failed
        rows = sent.failed_rows + _show_uploaded(client, out, sent.uploaded, json_output=json_output)
    if json_output:
        _dump(rows)
    if failed:
        raise typer.Exit(1)


@dataclass
class _Sent:
    """What the files of one `upload` came to."""

    uploaded: list[tuple[Path, str]] = field(default_factory=list)  # (file, asset id)
    errors: list[str] = field(default_factory=list)  # a sentence for each file that failed
    failed_rows: list[dict[str, Any]] = field(default_factory=list)  # and its --json row


def _send_files(
    client: MediaIngestClient,
    err: Console,
    files: list[Path],
    *,
    asset: str | None,
    mime_type: str | None,
    project_id: str | None,
    resume: ResumeStore,
) -> _Sent:
    """Uploads the files one after the other, a bar each; a file that fails does not stop the others."""
    from mediaingest.client.errors import ClientError, describe_error

    sent = _Sent()
    with _transfer_bars(err) as progress:
        for path in files:
            task = progress.add_task(path.name, total=path.stat().st_size)
            try:
                asset_id = _send_file(
                    client, progress, task, path, asset=asset, mime_type=mime_type, project_id=project_id, resume=resume
                )
            except ClientError as error:
                progress.update(task, description=f"{path.name} [red]failed[/red]")
                sent.errors.append(describe_error(error, path.name))
                sent.failed_rows.append({"file": str(path), "error": describe_error(error, path.name)})
                continue
            sent.uploaded.append((path, asset_id))
    for message in sent.errors:  # below the bars, next to the one that failed, not lost among them
        err.print(f"[red]✗[/red] {message}", highlight=False)
    return sent


def _transfer_bars(err: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),  # KiB, MiB: the units of the plans
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _send_file(
    client: MediaIngestClient,
    progress: Progress,
    task: TaskID,
    path: Path,
    *,
    asset: str | None,
    mime_type: str | None,
    project_id: str | None,
    resume: ResumeStore,
) -> str:
    """Uploads one file under its bar and confirms it; its asset id. Ctrl-C ends the command (exit 130),
    saying how to resume."""
    plans: list[TransferPlan] = []

    def on_plan(plan: TransferPlan) -> None:
        plans.append(plan)
        # Already stored counts as done, but not toward the speed (reset clears its samples).
        progress.reset(task, total=path.stat().st_size, completed=plan.received_bytes)
        progress.update(task, description=_plan_text(path, plan))

    try:
        return client.upload(
            path,
            mime_type=mime_type,
            project_id=project_id,
            resume=resume,
            asset_id=client.resolve_id(asset) if asset else None,
            on_plan=on_plan,
            on_progress=functools.partial(progress.advance, task),
        ).asset_id
    except KeyboardInterrupt:
        progress.stop()
        _say_how_to_resume(progress.console, path, plans)
        raise typer.Exit(130) from None


def _plan_text(path: Path, plan: TransferPlan) -> str:
    """The file's name on its bar, with how it goes up: in how many parts, and what storage holds already."""
    if plan.multipart:
        have = f", {len(plan.received)} already stored" if plan.received else ""
        return f"{path.name} ({plan.part_count} parts{have})"
    return f"{path.name} (already stored)" if plan.single_stored else path.name


def _say_how_to_resume(err: Console, path: Path, plans: list[TransferPlan]) -> None:
    from rich.markup import escape

    which = f" (asset {plans[0].asset_id[:8]})" if plans else ""
    err.print(
        f"[yellow]Interrupted.[/yellow] What reached storage is kept{which}: run "
        f"[bold]mediaingest upload {escape(str(path))}[/bold] again to resume.",
        highlight=False,
    )


def _show_uploaded(
    client: MediaIngestClient, out: Console, uploaded: list[tuple[Path, str]], *, json_output: bool
) -> list[dict[str, Any]]:
    """Each uploaded asset as the server has it now: a summary on stdout, and its --json row."""
    rows = []
    for path, asset_id in uploaded:
        detail = client.get(asset_id)
        rows.append({"file": str(path), "asset": detail.model_dump(mode="json", by_alias=True)})
        if not json_output:
            _summary(out, detail)
    return rows


def _follow_all(client: MediaIngestClient, err: Console, assets: list[tuple[Path, str]], timeout: float) -> bool:
    """Follows every asset at once (one event stream each), one bar per asset with the time left; whether
    one of them FAILED."""
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    # Time spent, not time left: stages differ too much in speed for a percentage to predict the rest
    # (a "time left" column read 0:00:00 until the end).
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:

        def follow(path: Path, asset_id: str) -> AssetStatus:
            task = bar.add_task(f"{path.name}: queued", total=100)

            def on_status(status: AssetStatus) -> None:
                bar.update(task, completed=_overall_progress(status), description=f"{path.name}: {_stage_text(status)}")

            return client.wait(asset_id, timeout=timeout, on_status=on_status)

        with ThreadPoolExecutor(max_workers=min(len(assets), 8), thread_name_prefix="follow") as pool:
            finals = list(pool.map(lambda item: follow(*item), assets))
    return any(final.processing_status.value == "FAILED" for final in finals)


def _overall_progress(status: AssetStatus) -> float:
    """Percent of the asset's whole ingestion: every job counts, so the bar never runs back to 0 between
    stages and the time left is about the asset, not the stage that happens to run."""
    if status.processing_status.value in ("READY", "FAILED"):
        return 100.0
    if not status.jobs:
        return 0.0
    return sum(_job_percent(job) for job in status.jobs) / len(status.jobs)


def _job_percent(job: JobOut) -> float:
    return 100.0 if job.status.value == "COMPLETED" else job.progress


# --- assets -------------------------------------------------------------------------------------------
@assets_app.command("list")
def assets_list(
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=100)] = 20,
    status: Annotated[str | None, typer.Option(help="Upload status: PENDING, UPLOADED, FAILED, EXPIRED…")] = None,
    processing_status: Annotated[
        str | None, typer.Option("--processing-status", help="PENDING, PROCESSING, READY or FAILED.")
    ] = None,
    media_type: Annotated[str | None, typer.Option("--type", help="VIDEO, AUDIO or IMAGE.")] = None,
    project: Annotated[str | None, typer.Option("--project")] = None,
    json_output: JsonOutput = False,
) -> None:
    """Your assets, newest first."""
    with _client(server, token) as client:
        result = client.list(
            page=page,
            page_size=page_size,
            status=status.upper() if status else None,
            processing_status=processing_status.upper() if processing_status else None,
            media_type=media_type.upper() if media_type else None,
            project_id=project,
        )
    if json_output:
        _dump(result.model_dump(mode="json", by_alias=True))
        return
    out, _ = _consoles()
    out.print(_asset_table(result))


def _asset_table(result: AssetPage) -> Table:
    """One row per asset, with short ids: `assets show` and `assets delete` take them (and --json has the
    whole ones)."""
    from rich.markup import escape
    from rich.table import Table

    from mediaingest.client.errors import format_bytes

    table = Table(title=f"{result.total} asset(s), page {result.page}", title_justify="left")
    for column in ("id", "name", "project", "type", "size", "status", "created"):
        table.add_column(column, no_wrap=column in ("id", "size"))
    for item in result.items:
        table.add_row(
            item.id[:SHORT_ID],
            escape(item.original_name),
            escape(item.project_id or "—"),
            item.type.value.lower(),
            format_bytes(item.file_size),
            _state(item),
            item.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    return table


@contextmanager
def _failing_on(asset_id: str) -> Iterator[None]:
    """What the API or the id lookup refuses ends the command in one line naming the id (exit 1)."""
    from mediaingest.client.errors import AmbiguousIdError, ApiError, InvalidIdError, describe_error

    try:
        yield
    except (ApiError, AmbiguousIdError, InvalidIdError) as error:
        typer.echo(f"Error: {describe_error(error, asset_id=asset_id)}", err=True)
        raise typer.Exit(1) from None


@assets_app.command("show")
def assets_show(
    asset_id: Annotated[str, typer.Argument(help="The asset id, or its first characters (at least 4).")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    json_output: JsonOutput = False,
) -> None:
    """One asset: its metadata and derived files (with signed download URLs under --json)."""
    with _client(server, token) as client, _failing_on(asset_id):
        detail = client.get(client.resolve_id(asset_id))
    if json_output:
        _dump(detail.model_dump(mode="json", by_alias=True))
        return
    out, _ = _consoles()
    _summary(out, detail)


@assets_app.command("delete")
def assets_delete(
    asset_ids: Annotated[list[str], typer.Argument(help="One or more asset ids, or their first characters.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete assets: their files, everything derived from them, and their quota use."""
    with _client(server, token) as client:
        # Each id is looked up first, so the question names what would go (and unknown ids are said at once).
        found = _look_up(client, asset_ids)
        if found and not yes:
            _confirm_deletion(found)
        deleted = _delete_found(client, found)
    if len(deleted) < len(asset_ids):  # an id not found, or an asset the server did not delete
        raise typer.Exit(1)


def _look_up(client: MediaIngestClient, asset_ids: list[str]) -> list[tuple[str, str]]:
    """(id as given, file name) of each asset found; an id not found is said, and the others still go."""
    from mediaingest.client.errors import AmbiguousIdError, ApiError, InvalidIdError, describe_error

    found: list[tuple[str, str]] = []
    for asset_id in asset_ids:
        try:
            found.append((asset_id, client.get(client.resolve_id(asset_id)).original_name))
        except (ApiError, AmbiguousIdError, InvalidIdError) as error:
            typer.echo(f"Error: {describe_error(error, asset_id=asset_id)}", err=True)
    return found


def _confirm_deletion(found: list[tuple[str, str]]) -> None:
    """Asks, naming what would go; no ends the command (exit 1)."""
    names = "\n".join(f"  {given}  {name}" for given, name in found)
    typer.confirm(f"Delete {len(found)} asset(s) and everything made from them?\n{names}\n", abort=True)


def _delete_found(client: MediaIngestClient, found: list[tuple[str, str]]) -> list[str]:
    """Deletes each asset found; the ids deleted (a refusal is said, and the others still go)."""
    from mediaingest.client.errors import ApiError, describe_error

    deleted: list[str] = []
    for asset_id, _ in found:
        full_id = client.resolve_id(asset_id)
        try:
            client.delete(full_id)
        except ApiError as error:
            typer.echo(f"Error: {describe_error(error, asset_id=asset_id)}", err=True)
            continue
        typer.echo(f"deleted {full_id}")
        deleted.append(full_id)
    return deleted


def position_seconds(text: str, frame_rate: str | None) -> float:
    """A place in the asset: seconds ("12.2") or a timecode from its start ("00:00:12:05", frames at the
    asset's rate; ";" for drop-frame), as the start of that frame in seconds."""
    from fractions import Fraction

    from mediaingest.pipeline.smartcut import timecode_frames

    if ":" not in text:
        return float(text)
    if not frame_rate:
        raise ValueError("the asset's frame rate is not known yet: give seconds")
    rate = Fraction(frame_rate)
    return float(timecode_frames(text, rate) / rate)


def clip(
    asset_id: Annotated[str, typer.Argument(help="The asset id, or its first characters (at least 4).")],
    in_point: Annotated[str, typer.Option("--in", help="Seconds, or a timecode from the start (00:00:12:05).")],
    out_point: Annotated[str, typer.Option("--out", help="Seconds, or a timecode; the clip ends before it.")],
    name: Annotated[str | None, typer.Option("--name", help="The clip's file name.")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    json_output: JsonOutput = False,
) -> None:
    """Cut [in, out) of a video into a clip of its own: playable at once, frame-exact once rendered."""
    with _client(server, token) as client, _failing_on(asset_id):
        detail = client.get(client.resolve_id(asset_id))
        rate = detail.metadata.frame_rate if detail.metadata else None
        try:
            start, end = position_seconds(in_point, rate), position_seconds(out_point, rate)
        except ValueError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(2) from None
        created = client.create_clip(detail.id, start=start, end=end, name=name)
    if json_output:
        _dump(created.model_dump(mode="json", by_alias=True))
        return
    typer.echo(_clip_text(created))
    if created.preview is not None:
        typer.echo(f"plays now: {created.preview.hls_url}")


def _clip_text(created: ClipCreated) -> str:
    """The clip's id and name, its frames and seconds, and its timecode if the video has one."""
    return (
        f"clip {created.asset_id} ({created.name}): frames {created.in_frame}–{created.out_frame - 1} "
        f"({created.frames} at {created.frame_rate}), {created.in_seconds:.3f}–{created.out_seconds:.3f} s"
        + (f", timecode {created.in_timecode}" if created.in_timecode else "")
    )

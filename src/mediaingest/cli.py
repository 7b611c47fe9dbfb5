"""The `mediaingest` command: serve the API, run workers and stages, manage users, sweep uploads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mediaingest.client.cli import assets_app
from mediaingest.client.cli import clip as clip_command
from mediaingest.client.cli import upload as upload_command
from mediaingest.config import ConfigurationError, Settings
from mediaingest.models.enums import Plan

if TYPE_CHECKING:
    from datetime import datetime

    from pydantic import ValidationError
    from sqlalchemy.engine import URL
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from mediaingest.models.user import ApiToken

app = typer.Typer(help="mediaingest: media ingestion backend.", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="Manage tenants and their API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.add_typer(assets_app, name="assets")  # the API client: upload, list, show, delete
app.command("upload")(upload_command)
app.command("clip")(clip_command)


def _fail(message: str) -> NoReturn:
    """One line a person can act on, and exit 1: never a traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _unit_of_work(settings: Settings) -> Iterator[Session]:
    """A unit of work on the service's database; our errors and an unready database become one line."""
    import sqlalchemy as sa

    from mediaingest.db import create_db_engine, create_session_factory, session_scope
    from mediaingest.exceptions import MediaIngestError

    url = sa.engine.make_url(settings.resolved_database_url)
    _require_sqlite_file(url)
    engine = create_db_engine(settings.resolved_database_url, pool_size=2)
    try:
        with session_scope(create_session_factory(engine)) as session:
            yield session
    except MediaIngestError as error:
        _fail(error.message)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
        _fail(_database_problem(url.render_as_string(hide_password=True), error))
    finally:
        engine.dispose()


def _require_sqlite_file(url: URL) -> None:
    """Connecting would create an empty SQLite file and hide the real problem: the wrong folder."""
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        _fail(
            f"no database at {url.database}: run this where the service runs (its DATA_DIR), or create it "
            "with `mediaingest db upgrade`"
        )


def _database_problem(where: str, error: DBAPIError) -> str:
    """What a database that refuses the unit of work lacks, in words: no tables yet, or the driver's reason."""
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    if "no such table" in reason or "does not exist" in reason:
        return (
            f"the database at {where} has no mediaingest tables: run `mediaingest db upgrade` "
            "(make run does), or point DATABASE_URL or DATA_DIR at the service's database"
        )
    return f"cannot use the database at {where}: {reason}"


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from mediaingest.db.migrate import upgrade

    settings = Settings()
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The user's e-mail (unique).")],
    plan: Annotated[Plan, typer.Option(case_sensitive=False, help="Quota plan.")] = Plan.USER,
    token_name: Annotated[str, typer.Option(help="A label for the first API token.")] = "default",  # noqa: S107
) -> None:
    """Create a user and print its first API token (shown once; only its hash is stored)."""
    from mediaingest.users.service import create_user, issue_token

    with _unit_of_work(Settings()) as session:
        user = create_user(session, email=email, plan=plan)
        issued = issue_token(session, user=user, name=token_name)
        user_id = user.id
    typer.echo(f"user_id: {user_id}", err=True)
    typer.echo(issued.token)


@users_app.command("token")
def users_token(
    email: Annotated[str, typer.Option(help="The user's e-mail.")],
    name: Annotated[str, typer.Option(help="A label for the token.")] = "default",
) -> None:
    """Issue another API token for an existing user."""
    from mediaingest.users.service import get_user, issue_token

    with _unit_of_work(Settings()) as session:
        issued = issue_token(session, user=get_user(session, email=email), name=name)
    typer.echo(issued.token)


@users_app.command("revoke-token")
def users_revoke_token(
    token: Annotated[str, typer.Argument(help="The token, or the prefix `users tokens` shows (mi_…).")],
) -> None:
    """Revoke an API token: the next request that carries it gets 401."""
    from mediaingest.users.service import revoke_token

    with _unit_of_work(Settings()) as session:
        record = revoke_token(session, token=token)
        prefix, user_id = record.token_prefix, record.user_id
    typer.echo(f"revoked token {prefix}… of user {user_id}")


@users_app.command("tokens")
def users_tokens(email: Annotated[str, typer.Option(help="The user's e-mail.")]) -> None:
    """List a user's API tokens: prefix, name, created, state (tokens themselves are never stored)."""
    from mediaingest.db import utcnow
    from mediaingest.users.service import get_user, list_tokens

    with _unit_of_work(Settings()) as session:
        rows = list_tokens(session, user=get_user(session, email=email))
        now = utcnow()
        for record in rows:
            state = _token_state(record, now)
            typer.echo(f"{record.token_prefix}…\t{record.name}\t{record.created_at:%Y-%m-%d %H:%M}\t{state}")


def _token_state(record: ApiToken, now: datetime) -> str:
    if record.revoked_at:
        return "revoked"
    return "expired" if record.expires_at and record.expires_at <= now else "active"


@users_app.command("delete")
def users_delete(
    email: Annotated[str | None, typer.Option(help="The user's e-mail.")] = None,
    user_id: Annotated[str | None, typer.Option("--id", help="The user's id (JWT users have no e-mail).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a user with every asset and stored object (as DELETE does), its tokens and webhook."""
    from mediaingest.assets.service import AssetService
    from mediaingest.dispatch import build_dispatcher
    from mediaingest.storage import build_storage
    from mediaingest.users.service import delete_user, get_user

    if (email is None) == (user_id is None):
        raise typer.BadParameter("give exactly one of --email or --id")
    if not yes:
        typer.confirm(f"Delete user {email or user_id} and all of its assets?", abort=True)
    settings = Settings()
    service = AssetService(settings=settings, storage=build_storage(settings), dispatcher=build_dispatcher(settings))
    with _unit_of_work(settings) as session:
        user = get_user(session, user_id=user_id, email=email)
        removed = delete_user(session, user=user, assets=service)
    typer.echo(f"deleted user {email or user_id} and {removed} asset(s)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT).")] = None,
    embedded_worker: Annotated[
        bool, typer.Option(help="Also run a local worker in this process (the embedded default).")
    ] = False,
) -> None:
    """Serve the HTTP API."""

    from mediaingest.api import create_app

    settings = Settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
    if not embedded_worker:
        _serve_ports(create_app(settings), settings)
        return
    from mediaingest.catalog import embedded_worker as run_embedded_worker

    with run_embedded_worker(settings) as local_worker:
        _serve_ports(create_app(settings, on_work=local_worker.wake), settings)


def _serve_ports(api: Any, settings: Settings) -> None:
    """The API on PORT and, with INTERNAL_PORT, the stage reports on theirs, in one process and event loop;
    SIGTERM or SIGINT shuts both down gracefully."""
    import asyncio
    import contextlib
    import signal

    import uvicorn

    def config(app: Any, port: int) -> uvicorn.Config:
        return uvicorn.Config(app, host=settings.host, port=port, log_config=None, access_log=False)

    internal = getattr(api.state, "internal_app", None)
    if internal is None:
        uvicorn.Server(config(api, settings.port)).run()
        return

    class Together(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # one handler below stops both servers
            yield

    servers = [Together(config(api, settings.port)), Together(config(internal, settings.internal_port))]

    async def serve_both() -> None:
        def stop() -> None:
            for server in servers:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(serve_both())


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs at once (WORKER_CONCURRENCY).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus port (WORKER_METRICS_PORT); 0 disables it.")
    ] = None,
    queues: Annotated[
        str,
        typer.Option(help="Queues to run, comma-separated: stages (media work), default (deliveries, sweeps)."),
    ] = "stages,default",
) -> None:
    """Run tasks from the database queue (stages, webhook deliveries, sweeps) until SIGTERM/SIGINT."""
    import signal

    from prometheus_client import start_http_server

    from mediaingest.catalog import REGISTRY
    from mediaingest.logging import configure_logging
    from mediaingest.worker.loop import Worker

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    if port:
        start_http_server(port, addr=settings.host)
    try:
        runner = Worker.from_settings(
            settings,
            tasks=REGISTRY,
            concurrency=concurrency,
            queues=_queue_names(queues),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--queues") from None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    runner.run()


def _queue_names(text: str) -> list[str]:
    """--queues as a list: the comma-separated names, without the spaces around them or empty ones."""
    return [name.strip() for name in text.split(",") if name.strip()]


@app.command("run-stage")
def run_stage(
    asset: Annotated[str, typer.Option(help="The asset id.")],
    stage: Annotated[str, typer.Option(help="A registered stage: probe, proxies, … or one of STAGE_MODULES.")],
    attempt: Annotated[int, typer.Option(min=1, help="The stage task's attempt number.")] = 1,
) -> None:
    """Run one stage attempt for one asset in a Kubernetes Job's pod. Exit 0 ok, 3 permanent, 1 transient.

    It reports to the API at STAGE_API_URL with the pod's projected token (STAGE_TOKEN_FILE), both set by the
    operator, and holds no other secret.
    """
    from mediaingest.logging import configure_logging
    from mediaingest.pipeline.registry import UnknownStageError, load_stage_modules, stage_named
    from mediaingest.stage_reports.one_shot import run_one_stage

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    load_stage_modules(settings.stage_modules)
    try:
        stage_value = stage_named(stage)
    except UnknownStageError as exc:
        raise typer.BadParameter(str(exc)) from exc
    raise typer.Exit(run_one_stage(settings, asset_id=asset, stage=stage_value, attempt=attempt))


@app.command()
def operator(
    namespace: Annotated[
        str | None, typer.Option(help='Namespace to watch (default K8S_NAMESPACE; "*" for the whole cluster).')
    ] = None,
    liveness_port: Annotated[int, typer.Option(help="kopf liveness endpoint port.")] = 8080,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port for the operator's gauges.")] = 9102,
) -> None:
    """Run the Kubernetes operator that turns MediaAsset resources into one Job per stage."""
    from mediaingest.operator.main import run

    run(namespace, liveness_port, metrics_port)


@app.command()
def sweep() -> None:
    """Expire uploads never confirmed (multipart aborted, objects deleted, quota released); remove strays."""
    from mediaingest.assets.service import AssetService
    from mediaingest.dispatch import build_dispatcher
    from mediaingest.logging import configure_logging
    from mediaingest.storage import build_storage

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    service = AssetService(settings=settings, storage=build_storage(settings), dispatcher=build_dispatcher(settings))
    with _unit_of_work(settings) as session:
        count = service.sweep_expired_uploads(session)
    with _unit_of_work(settings) as session:
        strays = service.reap_stray_uploads(session)
    typer.echo(f"expired {count} upload(s); removed {strays} stray object(s)")


def main() -> None:
    """The `mediaingest` console script: a setting that cannot work ends in one line, not a traceback."""
    import sys

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        app()
        return
    except ConfigurationError as error:
        message = str(error)
    except SettingsError as error:  # a value that is not even JSON: say where the parser stopped
        message = f"{error}: {error.__cause__}" if error.__cause__ else str(error)
    except ValidationError as error:
        if error.title not in ("Settings", "OperatorSettings"):
            raise
        message = _invalid_settings(error)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _invalid_settings(error: ValidationError) -> str:
    """Each setting that failed validation, where and why, on one line."""
    problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
    return f"invalid settings: {problems}"


if __name__ == "__main__":
    main()

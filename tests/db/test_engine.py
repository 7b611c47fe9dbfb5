"""SQLite concurrency as the embedded default uses it: writers serialize at BEGIN, readers never wait."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from mediaingest.db import create_db_engine, create_session_factory, session_scope
from mediaingest.exceptions import IntegrityCheckError
from mediaingest.models import User


def test_sqlite_readers_do_not_wait_for_a_writer_but_writers_queue(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    writes = create_session_factory(engine)
    reads = create_session_factory(engine, read_only=True)
    with writes.begin() as writer:
        writer.add(User(email="held@example.test"))
        writer.flush()  # the write lock is held until this block ends

        started = time.monotonic()
        with reads() as reader:
            assert reader.scalar(sa.select(sa.func.count()).select_from(User)) == 0  # the committed snapshot
        assert time.monotonic() - started < 1.0

        second_writer_done = threading.Event()

        def write_again() -> None:
            with writes.begin() as other:
                other.add(User(email="queued@example.test"))
            second_writer_done.set()

        thread = threading.Thread(target=write_again)
        thread.start()
        assert not second_writer_done.wait(0.5)  # BEGIN IMMEDIATE: waits for the first writer
    thread.join(timeout=10)
    assert second_writer_done.is_set()
    with reads() as reader:
        assert reader.scalar(sa.select(sa.func.count()).select_from(User)) == 2
    engine.dispose()


def test_a_unit_of_work_commits_on_success_and_rolls_back_any_error(database_url: str) -> None:
    """Only the wrapper decides: no exception, whatever its type, commits on its way out."""
    engine = create_db_engine(database_url, pool_size=1)
    factory = create_session_factory(engine)
    emails = {name: f"{name}-{uuid.uuid4().hex[:8]}@example.test" for name in ("kept", "integrity", "bug")}
    with session_scope(factory) as session:
        session.add(User(email=emails["kept"]))
    failures: list[Exception] = [IntegrityCheckError("not kept either"), RuntimeError("a bug")]
    for email, failure in zip([emails["integrity"], emails["bug"]], failures, strict=True):
        with pytest.raises(type(failure)), session_scope(factory) as session:
            session.add(User(email=email))
            session.flush()
            raise failure
    with factory() as session:
        stored = set(session.scalars(sa.select(User.email).where(User.email.in_(emails.values()))))
    engine.dispose()
    assert stored == {emails["kept"]}

"""`mediaingest users revoke-token / tokens / delete`: the real command against the service's database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.uploads import put_bytes, request_upload
from mediaingest.config import Settings
from mediaingest.models import ApiToken, MediaAsset, User

COMMAND = str(Path(sys.executable).with_name("mediaingest"))


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.resolved_database_url,
        "DATA_DIR": str(settings.data_dir),
        "LOCAL_STORAGE_SECRET": "test-local-storage-secret",
        "PUBLIC_URL": "http://testserver",
        "LOG_JSON": "true",
    }
    return subprocess.run(
        [COMMAND, *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def _create_user(settings: Settings, email: str) -> dict[str, str]:
    created = _cli(settings, "users", "create", "--email", email)
    assert created.returncode == 0, created.stderr
    return {"Authorization": f"Bearer {created.stdout.strip()}"}


def test_a_revoked_token_answers_401_at_once(client: TestClient, settings: Settings) -> None:
    headers = _create_user(settings, "revoke@example.test")
    second = _cli(settings, "users", "token", "--email", "revoke@example.test", "--name", "ci")
    other = {"Authorization": f"Bearer {second.stdout.strip()}"}
    assert client.get("/api/assets", headers=headers).status_code == 200

    token = headers["Authorization"].split()[1]
    revoked = _cli(settings, "users", "revoke-token", token)
    assert revoked.returncode == 0, revoked.stderr
    assert token not in revoked.stdout  # only the prefix is echoed
    assert client.get("/api/assets", headers=headers).status_code == 401
    assert client.get("/api/assets", headers=other).status_code == 200  # the user's other token still works

    listed = _cli(settings, "users", "tokens", "--email", "revoke@example.test")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2 and "revoked" in lines[0] and "active" in lines[1]
    # By the listed prefix, as an operator would.
    prefix = lines[1].split("…")[0]
    assert _cli(settings, "users", "revoke-token", prefix).returncode == 0
    assert client.get("/api/assets", headers=other).status_code == 401


def test_revoking_an_unknown_token_says_so(settings: Settings, client: TestClient) -> None:
    result = _cli(settings, "users", "revoke-token", "mi_not-a-token-of-ours-at-all")
    assert result.returncode == 1
    assert "no such API token" in result.stderr and "Traceback" not in result.stderr


def test_deleting_a_user_removes_its_assets_objects_and_tokens(
    client: TestClient, settings: Settings, users: Users
) -> None:
    headers = _create_user(settings, "gone@example.test")
    survivor_id, survivor_headers = users.create()
    storage = client.app.state.storage  # type: ignore[attr-defined]

    confirmed = []
    for name in ("a.mp4", "b.mp4"):
        ticket = request_upload(client, headers, file_name=name, size=4096).json()["data"]
        put_bytes(client, ticket, b"\0" * 4096)  # stored, not confirmed: a reservation and an object
        confirmed.append(ticket)
    pending = request_upload(client, headers, file_name="c.mp4", size=10).json()["data"]
    kept = request_upload(client, survivor_headers, file_name="keep.mp4", size=10).json()["data"]
    put_bytes(client, kept, b"\0" * 10)
    assert storage.list_keys(settings.bucket_incoming, "uploads/") != []

    refused = _cli(settings, "users", "delete", "--email", "gone@example.test")  # no --yes, no terminal
    assert refused.returncode != 0
    deleted = _cli(settings, "users", "delete", "--email", "gone@example.test", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "3 asset(s)" in deleted.stdout

    assert client.get("/api/assets", headers=headers).status_code == 401
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        owners = set(session.scalars(sa.select(MediaAsset.owner_id)))
        assert owners == {survivor_id}
        gone = sa.select(sa.func.count()).select_from(User).where(User.email == "gone@example.test")
        assert session.scalar(gone) == 0
        orphans = sa.select(sa.func.count()).select_from(ApiToken).join(User, isouter=True).where(User.id.is_(None))
        assert session.scalar(orphans) == 0
    keys = storage.list_keys(settings.bucket_incoming, "uploads/")
    assert keys == [kept["storageKey"]]
    assert pending["assetId"] not in {row["assetId"] for row in confirmed}


def test_delete_needs_exactly_one_identifier(settings: Settings, client: TestClient) -> None:
    result = _cli(settings, "users", "delete", "--yes")
    assert result.returncode == 2 and "exactly one" in result.stderr
    missing = _cli(settings, "users", "delete", "--email", "nobody@example.test", "--yes")
    assert missing.returncode == 1 and "user not found" in missing.stderr


def test_a_second_user_with_the_same_email_is_one_line_not_a_traceback(settings: Settings, client: TestClient) -> None:
    assert _cli(settings, "users", "create", "--email", "twice@example.test").returncode == 0
    again = _cli(settings, "users", "create", "--email", "twice@example.test")
    assert again.returncode == 1 and again.stdout == ""  # no token to capture by mistake
    assert again.stderr.strip() == "error: a user with e-mail 'twice@example.test' already exists"


def test_the_wrong_folder_is_said_plainly_and_creates_nothing(tmp_path: Path) -> None:
    """Run outside the project: no SQLite file appears, and one line says what to do."""
    env = {**os.environ, "DATA_DIR": str(tmp_path / "elsewhere")}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([COMMAND, "users", "create", "--email", "a@b.c"], env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no database at" in result.stderr and "mediaingest db upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "elsewhere" / "mediaingest.db").exists()


def test_an_unmigrated_database_is_said_plainly(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    data_dir.mkdir()
    (data_dir / "mediaingest.db").touch()  # exists, but has no tables
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([COMMAND, "users", "tokens", "--email", "a@b.c"], env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 1 and "has no mediaingest tables" in result.stderr
    assert "Traceback" not in result.stderr

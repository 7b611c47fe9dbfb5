"""JWT subjects are validated, and JWT users never meet API-token users: no impersonation, no plan rewrite."""

from __future__ import annotations

import time

import jwt
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import JWT_SECRET, Users
from fixtures.uploads import request_upload
from mediaingest.models import User
from mediaingest.models.enums import IdentitySource, Plan


def _bearer(claims: dict[str, object]) -> dict[str, str]:
    token = jwt.encode({"exp": int(time.time()) + 300, **claims}, JWT_SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def _user_count(client: TestClient) -> int:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return session.scalar(sa.select(sa.func.count()).select_from(User)) or 0


@pytest.mark.parametrize(
    "subject",
    ["", "x" * 65, "x" * 5000, "has space", "tab\there", "nul\x00", "é-accented", 42, None, ["a"]],
    ids=["empty", "65-chars", "5000-chars", "space", "tab", "nul", "non-ascii", "number", "null", "list"],
)
def test_bad_subjects_are_401_and_create_nobody(jwt_client: TestClient, subject: object) -> None:
    before = _user_count(jwt_client)
    response = jwt_client.get("/api/assets", headers=_bearer({"sub": subject, "plan": "PRO"}))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert _user_count(jwt_client) == before


@pytest.mark.parametrize("subject", ["auth0|5f7c8ec7c33c6c004bbafe82", "google-oauth2|1234567890", "a@b.c", "x" * 64])
def test_realistic_subjects_are_accepted(jwt_client: TestClient, subject: str) -> None:
    assert jwt_client.get("/api/assets", headers=_bearer({"sub": subject})).status_code == 200
    with jwt_client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        user = session.get(User, subject)
        assert user is not None and user.identity_source == IdentitySource.JWT


def test_a_jwt_cannot_act_as_an_api_token_user_nor_change_its_plan(jwt_client: TestClient, users: Users) -> None:
    token_user_id, token_headers = users.create(plan=Plan.USER)
    request_upload(jwt_client, token_headers, size=1000)  # the token user has an asset
    forged = _bearer({"sub": token_user_id, "plan": "ENTERPRISE"})
    response = jwt_client.get("/api/assets", headers=forged)
    assert response.status_code == 401, response.text
    with jwt_client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        user = session.get(User, token_user_id)
        assert user is not None and user.plan == Plan.USER and user.identity_source == IdentitySource.API_TOKEN
    # The token user still works, at its own plan.
    assert jwt_client.get("/api/assets", headers=token_headers).json()["data"]["total"] == 1


def test_the_plan_claim_follows_the_main_product_for_jwt_users(jwt_client: TestClient) -> None:
    jwt_client.get("/api/assets", headers=_bearer({"sub": "product-7", "plan": "PRO"}))
    jwt_client.get("/api/assets", headers=_bearer({"sub": "product-7", "plan": "ENTERPRISE"}))
    with jwt_client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        user = session.get(User, "product-7")
        assert user is not None and user.plan == Plan.ENTERPRISE

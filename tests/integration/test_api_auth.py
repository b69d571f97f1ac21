"""JWT auth of the monitoring API: every rejection case, the staff claim, RS256, and metrics auth modes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from skqueue.api.app import create_app
from skqueue.app import App
from skqueue.config import Settings
from skqueue.errors import ConfigError
from tests.integration.api_support import CELERY, SECRET, STAFF, api_client, bearer, token
from tests.support import RedisServer

METRICS = "/api/dashboard/metrics/prometheus/"
READS = [f"{CELERY}/status/", f"{CELERY}/workers/", f"{CELERY}/queues/", f"{CELERY}/tasks/",
         f"{CELERY}/tasks/some-id/"]
COMMANDS = [f"{CELERY}/tasks/wire.add/execute/", f"{CELERY}/tasks/some-id/revoke/",
            f"{CELERY}/tasks/some-id/retry/", f"{CELERY}/health_check/"]


@pytest.fixture
def client(server: RedisServer) -> Iterator[TestClient]:
    with api_client(server) as api:
        yield api


def _part(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."


def _hmac_token(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    signing_input = f"{_part(header)}.{_part(claims)}"
    return f"{signing_input}.{_part(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def _claims(**extra: Any) -> dict[str, Any]:
    return {"token_type": "access", "user_id": "u-1", "exp": int(time.time()) + 600, "is_staff": True, **extra}


BAD_TOKENS = {
    "bad signature": jwt.encode(_claims(), "another-secret-of-at-least-32-bytes!", algorithm="HS256"),
    "expired": token(staff=True, ttl=-10),
    "alg none": _unsigned(_claims()),
    "no exp": jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, SECRET, algorithm="HS256"),
    "refresh token": jwt.encode(_claims(token_type="refresh"), SECRET, algorithm="HS256"),
    "HS512 not configured": jwt.encode(_claims(), SECRET + SECRET, algorithm="HS512"),
    "garbage": "not.a.token",
    "alg not a string": _hmac_token({"alg": ["HS256"], "typ": "JWT"}, _claims(), SECRET.encode()),
}


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_token(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "not provided" in response.json()["error"]
    assert client.get(path, headers={"Authorization": "Basic dTpw"}).status_code == 401


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_tokens_are_rejected(client: TestClient, case: str) -> None:
    for path in (f"{CELERY}/status/", METRICS):
        response = client.get(path, headers=bearer(BAD_TOKENS[case]))
        assert response.status_code == 401, (case, response.text)
    if case == "expired":
        assert client.get(f"{CELERY}/status/", headers=bearer(BAD_TOKENS[case])).json()["error"] == "Token has expired"


def test_any_valid_token_reads(client: TestClient) -> None:
    for path in READS:
        assert client.get(path, headers=bearer(token())).status_code == 200, path


def test_simplejwt_token_without_staff_claim_reads(client: TestClient) -> None:
    # What simplejwt issues: token_type, exp, iat, jti, user_id (a UUID) and SenangKira's extra claims.
    claims = {"token_type": "access", "exp": int(time.time()) + 300, "iat": int(time.time()), "jti": "a" * 32,
              "user_id": "3f9b0a52-0000-4000-8000-000000000000", "tenant_id": "t", "email": "a@b.c",
              "username": "a", "company_name": "c"}
    headers = bearer(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert client.get(f"{CELERY}/status/", headers=headers).status_code == 200
    assert client.post(f"{CELERY}/health_check/", headers=headers).status_code == 403


@pytest.mark.parametrize("path", COMMANDS)
def test_commands_need_a_staff_token(client: TestClient, path: str) -> None:
    assert client.post(path).status_code == 401
    for claims in ({}, {"is_staff": False}, {"is_staff": "true"}, {"is_staff": 1}):
        reader = jwt.encode({**_claims(is_staff=None), **claims}, SECRET, algorithm="HS256")
        response = client.post(path, headers=bearer(reader), json={"args": [1, 2]})
        assert response.status_code == 403 and "staff" in response.json()["error"], claims


def test_staff_token_runs_commands(client: TestClient) -> None:
    response = client.post(f"{CELERY}/tasks/wire.add/execute/", headers=STAFF, json={"args": [1, 2]})
    assert response.status_code == 202
    assert client.post(f"{CELERY}/tasks/some-id/revoke/", headers=STAFF).status_code == 200


def test_staff_claim_name_is_a_setting(server: RedisServer) -> None:
    with api_client(server, jwt_staff_claim="admin") as client:
        url = f"{CELERY}/tasks/wire.add/execute/"
        assert client.post(url, headers=STAFF, json={"args": [1, 2]}).status_code == 403
        admin = bearer(token(staff=True, staff_claim="admin"))
        assert client.post(url, headers=admin, json={"args": [1, 2]}).status_code == 202


def test_rs256_with_a_public_key(server: RedisServer, tmp_path: Any) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_file = tmp_path / "jwt.pub"
    key_file.write_text(pem)
    signed = jwt.encode(_claims(), private, algorithm="RS256")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for configured in (pem, str(key_file)):
        with api_client(server, jwt_secret=None, jwt_public_key=configured) as client:
            assert client.post(f"{CELERY}/tasks/wire.add/execute/", headers=bearer(signed),
                               json={"args": [1, 2]}).status_code == 202
            forged = jwt.encode(_claims(), other, algorithm="RS256")
            assert client.get(f"{CELERY}/status/", headers=bearer(forged)).status_code == 401
            # HS256 signed with the public key text as the HMAC secret: the classic algorithm confusion.
            confused = _hmac_token({"alg": "HS256", "typ": "JWT"}, _claims(), pem.encode())
            assert client.get(f"{CELERY}/status/", headers=bearer(confused)).status_code == 401
            assert client.get(f"{CELERY}/status/", headers=STAFF).status_code == 401


def test_audience_and_issuer_when_configured(server: RedisServer) -> None:
    with api_client(server, jwt_audience="skqueue", jwt_issuer="senangkira") as client:
        good = jwt.encode(_claims(aud="skqueue", iss="senangkira"), SECRET, algorithm="HS256")
        assert client.get(f"{CELERY}/status/", headers=bearer(good)).status_code == 200
        for claims in (_claims(aud="other", iss="senangkira"), _claims(iss="senangkira"), _claims(aud="skqueue")):
            bad = jwt.encode(claims, SECRET, algorithm="HS256")
            assert client.get(f"{CELERY}/status/", headers=bearer(bad)).status_code == 401


@pytest.mark.parametrize(("mode", "anonymous", "reader", "staff"), [
    ("token", 401, 200, 200), ("none", 200, 200, 200), ("staff", 401, 403, 200)])
def test_metrics_auth_is_configurable(server: RedisServer, mode: str, anonymous: int, reader: int,
                                      staff: int) -> None:
    with api_client(server, api_metrics_auth=mode) as client:
        assert client.get(METRICS).status_code == anonymous
        assert client.get(METRICS, headers=bearer(token())).status_code == reader
        assert client.get(METRICS, headers=STAFF).status_code == staff


def test_openapi_needs_no_token(client: TestClient) -> None:
    assert client.get("/api/dashboard/openapi.json").json()["openapi"].startswith("3.")


def test_the_api_refuses_to_start_without_a_key() -> None:
    with pytest.raises(ConfigError, match="SKQUEUE_JWT_SECRET"):
        create_app(Settings(), App("x"))
    with pytest.raises(ConfigError, match="PEM"):
        create_app(Settings().replace(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n"), App("x"))

"""JWT bearer authentication, compatible with SenangKira's djangorestframework-simplejwt access tokens.

* The accepted algorithms are fixed by configuration, never by the token: HS256 when ``jwt_secret`` is
  set, RS256 when ``jwt_public_key`` is. A token's ``alg`` picks between those two keys only, so
  ``alg=none`` and algorithm confusion (an RSA public key used as an HMAC secret) are refused.
* ``exp`` is required and checked; ``aud`` and ``iss`` too when configured.
* simplejwt refresh tokens (``token_type`` other than ``access``) are refused.
* Commands need the staff claim (``jwt_staff_claim``, ``is_staff`` by default) to be JSON ``true``.
  simplejwt does not put ``is_staff`` in tokens by itself: add it in the token serializer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from skqueue.config import Settings
from skqueue.errors import ConfigError


class AuthError(Exception):
    """A request is not allowed: ``status`` is 401 (no valid token) or 403 (not staff)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: Any
    staff: bool
    claims: dict[str, Any]


def _public_key(value: str | None) -> str | None:
    if not value or value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError("jwt_public_key must be a PEM public key or the path of a file holding one")
    return path.read_text()


def _rsa_public_key(pem: str) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ConfigError(f"jwt_public_key is not a PEM public key: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("jwt_public_key must be an RSA public key (RS256)")
    return key


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.keys: dict[str, Any] = {}
        if settings.jwt_secret:
            self.keys["HS256"] = settings.jwt_secret
        public = _public_key(settings.jwt_public_key)
        if public:
            self.keys["RS256"] = _rsa_public_key(public)
        if not self.keys:
            raise ConfigError("the API needs SKQUEUE_JWT_SECRET (HS256) or SKQUEUE_JWT_PUBLIC_KEY (RS256) "
                              "to check tokens")
        self.staff_claim = settings.jwt_staff_claim
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer

    def identify(self, header: str | None) -> Identity:
        """The identity in an ``Authorization: Bearer <token>`` header; raises :class:`AuthError` (401)."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "Authentication credentials were not provided (Authorization: Bearer <token>)")
        claims = self._decode(token.strip())
        if claims.get("token_type", "access") != "access":
            raise AuthError(401, "Token is not an access token")
        return Identity(claims.get("user_id"), claims.get(self.staff_claim) is True, claims)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
            if not isinstance(alg, str) or alg not in self.keys:
                raise AuthError(401, f"Token algorithm {alg!r} is not accepted")
            claims: dict[str, Any] = jwt.decode(
                token, self.keys[alg], algorithms=[alg], audience=self.audience, issuer=self.issuer,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "Token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"Token is invalid: {exc}") from None
        return claims


def require(identity: Identity, *, staff: bool) -> None:
    if staff and not identity.staff:
        raise AuthError(403, "This action needs a staff token")


def mint(secret: str, *, user_id: str, staff: bool = False, ttl: float = 3600.0, staff_claim: str = "is_staff",
         now: float | None = None) -> str:
    """An HS256 access token shaped like simplejwt's (for the demo, the docs and tests)."""
    issued = int(time.time() if now is None else now)
    claims = {"token_type": "access", "exp": issued + int(ttl), "iat": issued, "jti": uuid.uuid4().hex,
              "user_id": user_id, staff_claim: staff}
    return jwt.encode(claims, secret, algorithm="HS256")

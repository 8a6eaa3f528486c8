"""Minting tokens with the server's secret.

Tokens are HS256 JWTs, built here with the standard library (``hmac``,
``hashlib``, ``base64``, ``json``) rather than PyJWT: signing one fixed
algorithm is twenty lines, and it keeps the SDK at one runtime dependency
(httpx). The server verifies them with a full JWT library; a test checks
the two agree (and that PyJWT, where installed, decodes ours).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Optional, Sequence

# The server refuses secrets shorter than this; a token signed with one
# would never verify.
MIN_SECRET_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    secret: str,
    sub: str,
    scope: Optional[Sequence[str]] = None,
    read_only: bool = False,
    ttl: float = 3600,
    *,
    admin: bool = False,
    now: Optional[float] = None,
) -> str:
    """An HS256 token for user ``sub``, valid for ``ttl`` seconds.

    ``scope`` (``["job:<id>", "logs:<id>", "children:<id>", "tag:<t>",
    "project:<p>"]``) limits what the token may read and subscribe to, and
    ``read_only`` forbids reports: the token a backend hands to a browser.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes (the server's --auth-secret)")
    if not sub:
        raise ValueError("sub (the user id the token stands for) is required")
    if not ttl or ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    if admin and (scope or read_only):
        raise ValueError("an admin token cannot be scoped or read-only")
    issued = int(now if now is not None else time.time())
    claims: Dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + int(ttl)}
    if admin:
        claims["admin"] = True
    if scope is not None:
        scope = [str(s) for s in scope]
        for s in scope:
            kind, _, key_ = s.partition(":")
            if kind not in ("job", "logs", "children", "tag", "project") or not key_:
                raise ValueError(f"scope entry {s!r} must be job:<id>, logs:<id>, children:<id>, tag:<t> or project:<p>")
        claims["scope"] = scope
    if read_only:
        claims["read_only"] = True
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"

"""What every AutoTrader HTTP endpoint checks before the app sees a request (an ASGI middleware).

    token = load_api_token(settings.home)            # AUTOTRADER_API_TOKEN, else $AUTOTRADER_HOME/api_token (0600)
    app = RequestGuard(app, allowed_hosts=("127.0.0.1",), token=token)

* ``Host`` must name an allowed host (loopback names by default): a DNS-rebinding page, whose
  requests carry its own host name, is refused with 400.
* An ``Origin`` header must be ``http(s)://`` + the request's own allowed ``Host``: 403 otherwise.
* A state-changing request (POST, PUT, PATCH, DELETE) must carry ``Content-Type: application/json``
  (415 otherwise; a browser cannot send it cross-site without a preflight) and the API token in
  ``Authorization: Bearer …`` or ``X-AutoTrader-Token`` (401), compared in constant time.
  ``token_for_reads`` extends the token to every request (the dashboard beyond loopback), also
  accepted from a ``autotrader_token`` cookie that ``GET /?token=…`` sets.
* A body is read before the app runs, at most ``max_body_bytes`` (413) within ``body_timeout_s``
  (408); headers beyond ``MAX_HEADER_BYTES`` and a head that drips in slower than
  ``HEAD_TIMEOUT_S`` are cut off by ``autotrader.api.protocol.GuardedH11Protocol``.
* Every answer carries a Content-Security-Policy, ``X-Frame-Options: DENY``, ``nosniff`` and
  ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autotrader.domain.errors import ConfigError
from autotrader.domain.redact import remember_secret

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_ENV = "AUTOTRADER_API_TOKEN"  # noqa: S105 - the variable's name
TOKEN_FILE = "api_token"  # noqa: S105 - a file name
TOKEN_COOKIE = "autotrader_token"  # noqa: S105 - a cookie name
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY_BYTES = 16 * 1024
BODY_TIMEOUT_S = 5.0
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_MIN_TOKEN_LEN = 16


# ------------------------------------------------------------------------------------------ the token


def load_api_token(home: Path, env: MutableMapping[str, str] | None = None) -> str:
    """``AUTOTRADER_API_TOKEN``, else the token in ``home/api_token`` (created 0600 on first use)."""
    env = os.environ if env is None else env
    if value := (env.get(TOKEN_ENV) or "").strip():
        if len(value) < _MIN_TOKEN_LEN:
            raise ConfigError(f"{TOKEN_ENV}: give at least {_MIN_TOKEN_LEN} characters")
        remember_secret(value)
        return value
    path = Path(home) / TOKEN_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                raise ConfigError(
                    f"API token file {path} is readable by other users: chmod 600 it (or delete it to get a new one)"
                ) from None
            value = path.read_text(encoding="utf-8").strip()
        else:
            value = secrets.token_urlsafe(32)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(value + "\n")
    except OSError as e:
        raise ConfigError(f"API token file {path}: {e.strerror}; or set {TOKEN_ENV}") from None
    if len(value) < _MIN_TOKEN_LEN:
        raise ConfigError(f"API token file {path}: fewer than {_MIN_TOKEN_LEN} characters; delete it to get a new one")
    remember_secret(value)
    return value


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the expected one."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


# --------------------------------------------------------------------------------------- host names


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str | None:
    """The host name of a ``Host`` header value (``None`` when malformed)."""
    try:
        parts = urlsplit("//" + value)
        _ = parts.port
    except ValueError:
        return None
    if parts.username is not None or parts.path or not parts.hostname:
        return None
    return parts.hostname


def allowed_host_names(extra: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(LOOPBACK_NAMES) | {h.strip().strip("[]").lower() for h in extra if h.strip()}


# ------------------------------------------------------------------------------------------ the guard


class RequestGuard:
    """The checks listed in the module docstring, in front of ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str] = (),
        token: str | None = None,
        token_for_reads: bool = False,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout_s: float = BODY_TIMEOUT_S,
        csp: str = DEFAULT_CSP,
    ) -> None:
        self.app = app
        self.state = getattr(app, "state", None)  # the wrapped app's state (Starlette), for its owner
        self.allowed = allowed_host_names(allowed_hosts)
        self.token = token
        self.token_for_reads = token_for_reads and token is not None
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, text = refusal
            await _answer(send_secured, status, text)
            return
        query_token = _query_token(scope) if self.token_for_reads and scope["method"] == "GET" else None
        if query_token is not None and token_matches(query_token, self.token or ""):
            await self._set_cookie(scope, send_secured)
            return
        if scope["method"] in STATE_CHANGING:
            body = await self._read_body(headers, receive, send_secured)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_secured)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = host_name(host)
        if name is None or name.lower() not in self.allowed:
            return 400, f"Host {host[:100]!r} is not allowed here (allow it with --allowed-host)"
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
            return 403, f"Origin {origin[:100]!r} does not match this server"
        method = scope["method"]
        if method in STATE_CHANGING:
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return 415, "send Content-Type: application/json"
        needs_token = self.token is not None and (method in STATE_CHANGING or self.token_for_reads)
        presented = _presented_token(scope, headers)
        if method == "GET" and self.token_for_reads and presented is None:
            presented = _query_token(scope)  # the link that sets the cookie
        if needs_token and not token_matches(presented, self.token or ""):
            return 401, "missing or wrong API token (Authorization: Bearer <token>; see AUTOTRADER_API_TOKEN)"
        return None

    async def _read_body(self, headers: dict[str, str], receive: Receive, send: Send) -> bytes | None:
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
            return None
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await _answer(send, 408, f"request body not received within {self.body_timeout_s:g} s")
                return None
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
                return None
            if not message.get("more_body", False):
                break
        if body.strip():
            try:
                json.loads(body)
            except ValueError:
                await _answer(send, 400, "the request body is not JSON")
                return None
        return bytes(body)

    async def _set_cookie(self, scope: Scope, send: Send) -> None:
        given = _query_token(scope)
        cookie = f"{TOKEN_COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", scope["path"].encode() or b"/"), (b"set-cookie", cookie.encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        name = key.decode("latin-1").lower()
        if name not in out:  # the first of duplicated headers counts (h11 refuses duplicated Host)
            out[name] = value.decode("latin-1")
    return out


def _presented_token(scope: Scope, headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "x-autotrader-token" in headers:
        return headers["x-autotrader-token"].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            return value
    return None


def _query_token(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The one redaction routine: secrets out of every text before it is logged, stored or shown.

    remember_secret(api_key)                 # known values are masked wherever they appear
    redact("postgresql://u:pw@h/db")         # 'postgresql://u:***@h/db'
    redact("host=h password='a b' dbname=x") # "host=h password=*** dbname=x"
    raise StorageError(redact(str(e))) from scrub(e)

Forms covered: a URL's ``user:password@``; ``password=``/``secret=``/``token=``/``api_key=``-like
keys in query strings, libpq ``key=value`` strings (quoted or not) and ``key: value`` / JSON
pairs; ``Authorization: Bearer …`` and the Bybit ``X-BAPI-*`` key/sign headers; and every value
given to ``remember_secret`` (API keys, the API token, a DSN's password).

``scrub(exc)`` turns an exception chain into a redacted copy (type names and redacted messages,
no frames, no arguments), for ``raise … from scrub(e)`` where the original could hold a secret.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_SECRET_LEN = 4

_KEYS = (
    r"password|passwd|pwd|sslpassword|secret|api[_-]?secret|api[_-]?key|apikey|access[_-]?token|token|"
    r"auth[_-]?token|x-bapi-api-key|x-bapi-sign|sign|signature"
)
# URL userinfo: scheme://user:password@host  (the password may hold anything but "@" and "/")
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]*)(?P<tail>@)")
# key=value (query string, libpq DSN): value quoted ('…' with \' escapes, "…") or bare
_KEY_VALUE = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9_])(?:{_KEYS}))(?P<sep>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;,'\"]+)",
    re.IGNORECASE,
)
# key: value / "key": "value" (JSON, headers, reprs of dicts)
_KEY_COLON = re.compile(
    rf"(?P<key>[\"']?(?<![A-Za-z0-9_])(?:{_KEYS})[\"']?)(?P<sep>\s*:\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s,;}'\"]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\b(?:bearer|basic))(?P<sep>\s+)(?P<value>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)

_known: set[str] = set()
_known_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (values shorter than 4 characters are ignored)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _known_lock:
            _known.update({value, quote(value, safe=""), quote_plus(value)})  # as typed and URL-encoded


def forget_secrets() -> None:
    """Drop every remembered value (tests)."""
    with _known_lock:
        _known.clear()


def known_secrets() -> frozenset[str]:
    with _known_lock:
        return frozenset(_known)


def _mask_value(m: re.Match[str]) -> str:
    return f"{m.group('key')}{m.group('sep')}{MASK}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every password, key, token and known secret replaced by ``***``."""
    if not text:
        return text
    values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN} | known_secrets()
    for value in sorted(values, key=len, reverse=True):  # longest first: a secret may contain another
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}{m.group('tail')}", text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _KEY_COLON.sub(_mask_value, text)
    return _BEARER.sub(_mask_value, text)


class RedactedError(Exception):
    """Stands in for an exception whose text could hold a secret: its type name and redacted message."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name


def scrub(exc: BaseException | None, secrets: Iterable[str | None] = (), _depth: int = 0) -> RedactedError | None:
    """A redacted copy of ``exc`` and its causes (no frames, no arguments): ``raise … from scrub(e)``."""
    if exc is None or _depth > 8:
        return None
    values = tuple(secrets)
    copy = RedactedError(f"{type(exc).__module__}.{type(exc).__qualname__}", redact(str(exc), values))
    inner = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)
    copy.__cause__ = scrub(inner, values, _depth + 1)
    return copy

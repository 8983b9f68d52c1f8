"""The one redaction routine: every DSN form, keys, tokens, known values, exception chains and log records."""

from __future__ import annotations

import io
import json
import logging
import traceback

import pytest

from autotrader.domain.redact import forget_secrets, redact, remember_secret, scrub
from autotrader.logs import JsonFormatter, RedactingFilter

PW = "S3cr3t-pw"


@pytest.fixture(autouse=True)
def _no_remembered_secrets():
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://trader:{PW}@db.example:5432/state",
        f"postgresql+psycopg://trader:{PW}@db.example/state?sslmode=require",
        f"postgresql://trader@db.example/state?sslmode=require&password={PW}",
        f"postgresql+psycopg://?dbname=state&host=db&password={PW}&user=u",
        f"host=db port=5432 user=trader password={PW} dbname=state",
        f"host=db password = {PW} dbname=state",
        f"host=db password='{PW} with spaces' dbname=state",
        f"host=db password='{PW}\\'quote' dbname=state",
        f'host=db password="{PW}" dbname=state',
        f'{{"password": "{PW}", "user": "u"}}',
        f"{{'api_secret': '{PW}'}}",
        f"Authorization: Bearer {PW}",
        f"X-BAPI-API-KEY: {PW}",
        f"https://h/v5/x?api_key={PW}&sign={PW}",
        f"token={PW}",
    ],
)
def test_redact_each_secret_form_leaves_no_secret(text) -> None:
    out = redact(text)
    assert PW not in out
    assert "with spaces" not in out
    assert "quote'" not in out
    assert "***" in out


def test_redact_keeps_what_is_not_secret() -> None:
    text = "cannot reach PostgreSQL at db.example:5432 (database state): connection refused"
    assert redact(text) == text
    assert redact("http://127.0.0.1:8080/v5/order/create") == "http://127.0.0.1:8080/v5/order/create"
    assert redact("postgresql://trader:***@h/db") == "postgresql://trader:***@h/db"


def test_redact_remembered_values_anywhere_also_url_encoded() -> None:
    remember_secret("a b/c'd")
    out = redact("x a b/c'd y a%20b%2Fc%27d z a+b%2Fc%27d")
    assert out == "x *** y *** z ***"
    remember_secret("abc")  # too short to mask safely
    assert redact("abcdef") == "abcdef"


def test_scrub_copies_the_chain_with_redacted_texts_and_no_frames() -> None:
    try:
        try:
            raise OSError(f"connect postgresql://u:{PW}@h/db")
        except OSError as inner:
            raise RuntimeError(f"wrapped key {PW}") from inner
    except RuntimeError as e:
        copy = scrub(e, [PW])
    assert copy is not None
    text = "".join(traceback.format_exception(copy))
    assert PW not in text
    assert "builtins.RuntimeError: wrapped key ***" in text
    assert "builtins.OSError: connect postgresql://u:***@h/db" in text


def test_redacting_filter_redacts_messages_args_and_chained_tracebacks() -> None:
    remember_secret(PW)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("autotrader.test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            try:
                raise ValueError(f"inner with {PW}")
            except ValueError as inner:
                raise KeyError("outer") from inner
        except KeyError:
            logger.exception("failed for dsn %s", f"host=h password={PW}")
        logger.warning("token %s", PW)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert PW not in stream.getvalue()
    first = json.loads(lines[0])
    assert "inner with ***" in first["exception"]  # the chained cause is there, redacted
    assert first["message"] == "failed for dsn host=h password=***"

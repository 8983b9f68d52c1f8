"""Shared fixtures: an isolated AUTOTRADER_HOME per test and a private PostgreSQL schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_DSN = os.environ.get("AUTOTRADER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Iterator[os.PathLike[str]]:
    """Every test gets its own AUTOTRADER_HOME and no inherited store/exchange settings."""
    home = tmp_path / "autotrader_home"
    monkeypatch.setenv("AUTOTRADER_HOME", str(home))
    for name in ("POSTGRES_DSN", "AUTOTRADER_STORE", "AUTOTRADER_CONFIG", "BYBIT_API_KEY", "BYBIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema in the test database, dropped afterwards. Yields ``(dsn, schema)``.

    The server must be running (``.ci/run`` starts it); a missing server fails the test, it is
    never skipped.
    """
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(POSTGRES_DSN, autocommit=True)
    except psycopg.OperationalError as e:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_DSN}: {e}. Start it (see .ci/run).")
    with conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield POSTGRES_DSN, schema
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

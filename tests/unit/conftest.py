"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from autotrader.adapters.state import open_state_store
from autotrader.live.ports import StateStore


@pytest.fixture
def store(tmp_path) -> Iterator[StateStore]:
    """The robot's state store in a fresh SQLite file, closed after the test."""
    s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()

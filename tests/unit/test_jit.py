"""numba's start-up helper: once per process, the garbage collector left as the caller had it."""

from __future__ import annotations

import gc

import pytest

from autotrader import jit


@pytest.fixture
def fresh_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``start_numba`` run again in this (already started) test process."""
    monkeypatch.setattr(jit, "_started", False)


@pytest.mark.usefixtures("fresh_start")
@pytest.mark.parametrize("enabled", [True, False], ids=["collector-on", "collector-off"])
def test_start_numba_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        jit.start_numba()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.usefixtures("fresh_start")
def test_start_numba_freezes_what_the_start_up_left_alive() -> None:
    gc.unfreeze()
    jit.start_numba()
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("fresh_start")
def test_start_numba_runs_once() -> None:
    jit.start_numba()
    gc.unfreeze()
    jit.start_numba()  # the second call does nothing: nothing is frozen again
    assert gc.get_freeze_count() == 0

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


# ---- the on-disk cache follows every module with compiled code


def _compiled_modules_in_tree() -> set[str]:
    root = jit._PACKAGE
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*.py") if "@njit" in p.read_text() and p.name != "jit.py"
    }


def test_every_module_with_compiled_code_is_listed_and_takes_njit_from_jit() -> None:
    assert set(jit.COMPILED_MODULES) == _compiled_modules_in_tree()
    for name in jit.COMPILED_MODULES:
        text = (jit._PACKAGE / name).read_text()
        assert "from autotrader.jit import njit" in text, name
        assert "from numba import njit" not in text, name


@pytest.fixture
def package_tree(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A package folder with two compiled modules and cache files beside them."""
    for name in ("risk/rules.py", "backtest/fast/kernel.py"):
        source = tmp_path / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("x = 1\n")
    monkeypatch.setattr(jit, "_PACKAGE", tmp_path)
    monkeypatch.setattr(jit, "COMPILED_MODULES", ("risk/rules.py", "backtest/fast/kernel.py"))
    monkeypatch.setattr(jit, "STAMP_FILE", tmp_path / "__pycache__" / "numba-sources.stamp")
    return tmp_path


def _cache_files(root):
    caches = [root / "risk/__pycache__", root / "backtest/fast/__pycache__"]
    for cache in caches:
        cache.mkdir(exist_ok=True)
    files = [caches[0] / "rules.kelly_nb-59.py311.nbi", caches[1] / "kernel.simulate_nb-176.py311.1.nbc"]
    for f in files:
        f.write_bytes(b"cached")
    return files


def test_a_change_in_an_inlined_module_drops_every_compiled_modules_cache(package_tree) -> None:
    files = _cache_files(package_tree)
    assert jit.drop_stale_numba_cache()  # first start: no stamp yet
    files = _cache_files(package_tree)
    assert not jit.drop_stale_numba_cache()  # nothing changed: the cache is kept
    assert all(f.exists() for f in files)
    (package_tree / "risk/rules.py").write_text("x = 22\n")  # only the inlined module changes
    assert jit.drop_stale_numba_cache()
    assert not any(f.exists() for f in files), "the kernel's cache must go too"


def test_other_cache_files_in_the_folders_are_left_alone(package_tree) -> None:
    keep = package_tree / "risk/__pycache__/limits.cpython-311.pyc"
    _cache_files(package_tree)
    keep.write_bytes(b"bytecode")
    jit.drop_stale_numba_cache()
    assert keep.exists()

"""numba's start-up, done once per process before the first compiled module is defined.

Importing numba and readying its CPU target (the implementations of every supported function,
loaded before any compiled function can run or be read from the on-disk cache) creates a few
hundred thousand long-lived Python objects. With the cyclic garbage collector running, each
collection during that start-up walks all of them, and so does every full collection later and
the one at interpreter exit. ``start_numba`` pauses the collector for the start-up and then moves
everything alive into the permanent generation (``gc.freeze``), which collections skip: ~0.2 s
of CPU less per process. Objects created afterwards are collected as usual; the only cost is that
reference cycles already unreachable at that moment are never reclaimed (a one-off, small).

numba's on-disk cache (``cache=True``) is keyed by the stamp of the file that defines a function
only: a kernel that inlines a function of another module keeps its old machine code when only that
other module changes. ``start_numba`` therefore compares the stamps of every module with compiled
code (``COMPILED_MODULES``) against the ones recorded at the last start and, when any differs,
deletes the in-tree cache files of all of them, so each is compiled afresh once.

Every module with compiled code takes ``njit`` from here (``from autotrader.jit import njit``).
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

_started = False
_PACKAGE = Path(__file__).resolve().parent
# every module that defines numba-compiled functions (a unit test keeps this list complete)
COMPILED_MODULES = (
    "backtest/fast/kernel.py",
    "backtest/sweep.py",
    "risk/policy.py",
    "risk/rules.py",
    "strategy/indicators.py",
    "strategy/library/ml.py",
    "validation/montecarlo.py",
    "validation/overfitting.py",
)
STAMP_FILE = _PACKAGE / "__pycache__" / "numba-sources.stamp"


def sources_stamp() -> str:
    """A digest of the (path, size, modification time) of every module with compiled code."""
    digest = hashlib.sha256()
    for name in COMPILED_MODULES:
        try:
            st = (_PACKAGE / name).stat()
        except OSError:
            continue
        digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()


def drop_stale_numba_cache() -> bool:
    """Delete the in-tree numba cache files of ``COMPILED_MODULES`` when any of them changed since
    the last call; returns True when it deleted. Does nothing where the package folder is read-only
    (an installed package: numba then caches per user, and an upgrade rewrites every file)."""
    stamp = sources_stamp()
    try:
        if STAMP_FILE.read_text() == stamp:
            return False
    except OSError:
        pass
    if not os.access(_PACKAGE, os.W_OK):
        return False
    for name in COMPILED_MODULES:
        cache = (_PACKAGE / name).parent / "__pycache__"
        stem = Path(name).stem + "."
        for path in cache.glob(f"{stem}*.nb[ic]"):
            path.unlink(missing_ok=True)  # a concurrent process may have deleted it already
    try:
        STAMP_FILE.parent.mkdir(exist_ok=True)
        tmp = STAMP_FILE.with_name(f"{STAMP_FILE.name}.{os.getpid()}")
        tmp.write_text(stamp)
        tmp.replace(STAMP_FILE)
    except OSError:
        pass
    return True


def start_numba() -> None:
    """Import numba and ready its CPU target once, with the garbage collector paused, then freeze."""
    global _started
    if _started:
        return
    drop_stale_numba_cache()
    enabled = gc.isenabled()
    gc.disable()
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    finally:
        if enabled:
            gc.enable()
    gc.freeze()
    _started = True


def njit(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``numba.njit``, after :func:`start_numba` (use it for every compiled function)."""
    start_numba()
    import numba

    return numba.njit(*args, **kwargs)

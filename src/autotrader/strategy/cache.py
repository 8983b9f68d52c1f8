"""A cache for expensive per-bar model outputs (the ``ml`` strategy's probabilities).

The protocol is two methods, so a test can pass a dict-backed object and the CLI a directory.
Keys are hex strings chosen by the caller (a hash of everything the value depends on); a cache
never has to invalidate: new inputs mean a new key.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from autotrader.files import atomic_output

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[0-9A-Za-z_.-]{1,200}$")


@runtime_checkable
class PredictionCache(Protocol):
    """Stores arrays by key."""

    def get(self, key: str) -> np.ndarray | None:
        """The array stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, value: np.ndarray) -> None:
        """Store ``value`` under ``key`` (replacing any previous value)."""
        ...


class NpzPredictionCache:
    """One ``<key>.npz`` file per key in ``directory`` (created on first ``put``).

    Writes are atomic (a temporary file in the same directory, then ``os.replace``), so concurrent
    runs and crashes never leave a half-written entry; an unreadable entry counts as a miss.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"invalid cache key {key!r}")
        return self.directory / f"{key}.npz"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                return np.array(npz["value"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            log.warning("ignoring unreadable cache entry %s: %s", path, e)
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        with atomic_output(self._path(key), binary=True) as f:
            np.savez(f, value=np.asarray(value))

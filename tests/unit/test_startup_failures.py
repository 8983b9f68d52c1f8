"""The robot's record of failed start-ups: counted in a row, and never left half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotrader import files
from autotrader.cli.autotrade import StartupFailures


def test_each_failed_start_up_adds_one_to_the_record_with_its_first_line(tmp_path: Path) -> None:
    failures = StartupFailures(tmp_path / "home" / "startup-failures.json", limit=3)
    failures.record(RuntimeError("exchange refused the key\ndetails"))
    failures.record(RuntimeError("exchange refused the key"))
    record = json.loads(failures.path.read_text(encoding="utf-8"))
    assert (record["count"], record["reason"]) == (2, "exchange refused the key")


def test_a_record_that_cannot_be_written_whole_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = StartupFailures(tmp_path / "startup-failures.json", limit=3)
    failures.record(RuntimeError("first"))
    before = failures.path.read_text(encoding="utf-8")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    failures.record(RuntimeError("second"))  # a start-up failure must not turn into a crash of its own
    assert failures.path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["startup-failures.json"]

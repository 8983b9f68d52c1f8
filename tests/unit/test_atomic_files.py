"""The atomic file writer: a crash mid-write leaves the old file whole and no temporary file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autotrader.files import atomic_output, write_text_atomic


class Crash(Exception):
    """Stands for anything that stops a write half-way (a full disk, a kill, a bug)."""


def _write_then_crash(target: Path, part: str) -> None:
    with atomic_output(target) as f:
        f.write(part)
        f.flush()
        raise Crash


def test_writes_text_and_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.json"
    assert write_text_atomic(target, '{"π": 1}\n') == target
    assert target.read_text(encoding="utf-8") == '{"π": 1}\n'
    assert os.listdir(target.parent) == ["report.json"]


def test_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old page " * 1000, encoding="utf-8")
    write_text_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "new"


def test_a_crash_mid_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "trades.csv"
    target.write_text("the old, complete file\n", encoding="utf-8")
    with pytest.raises(Crash):
        _write_then_crash(target, "half of the new ")
    assert target.read_text(encoding="utf-8") == "the old, complete file\n"
    assert os.listdir(tmp_path) == ["trades.csv"]


def test_a_crash_before_the_first_write_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "cache.npz"
    with pytest.raises(Crash):
        _write_then_crash(target, "a partial entry")
    assert os.listdir(tmp_path) == []


def test_nothing_is_visible_at_the_target_until_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "chart.png"
    with atomic_output(target, binary=True) as f:
        f.write(b"\x89PNG")
        f.flush()
        assert not target.exists()
        hidden = [n for n in os.listdir(tmp_path) if n.startswith(".") and n.endswith(".tmp")]
        assert len(hidden) == 1
    assert target.read_bytes() == b"\x89PNG"
    assert os.listdir(tmp_path) == ["chart.png"]


def test_the_new_file_gets_ordinary_permissions_not_private_ones(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "summary.csv", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "summary.csv").stat().st_mode & 0o777 == 0o644

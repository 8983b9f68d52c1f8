"""Every command's ``--help`` is readable on an 80-column terminal: no option name or default is cut."""

from __future__ import annotations

import sys

import pytest
import typer

from autotrader import cli


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(cli.app)
    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "autotrader")
def test_help_at_80_columns_cuts_no_option_name(path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys, "argv", ["autotrader", *path, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "Usage: autotrader" in out
    assert "…" not in out
    longest = max(len(line) for line in out.splitlines())
    assert longest <= 80, f"a help line is {longest} columns wide"

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


def test_data_list_at_80_columns_cuts_no_date(tmp_path):
    from tests.e2e.test_cli_data import run_cli

    result = run_cli("data", "list", env={"COLUMNS": "80", "AUTOTRADER_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    btc = next(line for line in lines if "BTCUSDT" in line and " 1h " in line)
    assert "2017-08-17 04:00" in btc
    assert "2024-12-31 23:00" in btc


def test_stress_table_at_80_columns_keeps_one_row_per_scenario_and_whole_figures():
    import io

    from rich.console import Console

    from autotrader.cli.analyze import _render_stress
    from autotrader.validation.stress import ScenarioResult, StressReport

    title = "liquidity crisis (slippage x10, fees x2, fills <= 1 % of bar volume)"
    rows = tuple(
        ScenarioResult(
            f"s{i}", title, "synthetic", "2022-01-01 .. 2023-12-31", "failed" if i == 3 else "survived",
            -0.1234, -0.2345, 0.15, 255, "max drawdown 23.45% beyond the 15% limit" if i == 3 else "ok",
        )
        for i in range(1, 11)
    )  # fmt: skip
    out = io.StringIO()
    _render_stress(Console(file=out, width=80, color_system=None), StressReport(rows, 0.15, "medium", None, ()))
    text = out.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    assert sum("2022-01-01→2023-12-31" in line for line in lines) == 10  # the window on one line, never cut
    assert sum("-12.34%" in line and "-23.45%" in line for line in lines) == 10
    assert "3. failed: max drawdown 23.45% beyond the 15% limit" in text
    assert len(lines) <= 3 + 10 * 4 + 2

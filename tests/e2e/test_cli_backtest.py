"""`autotrader backtest` as a user runs it: real process, bundled data, every output format."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_cli_data import run_cli

FAST = ["--strategy", "sma_cross", "--period", "2023-01-01:2023-06-30", "--quiet"]


def test_backtest_tradingview_writes_html_and_json(tmp_path):
    result = run_cli("backtest", "--strategy", "sma_cross", "--period", "2023-01-01:2023-06-30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Total Return" in result.stdout
    saved = tmp_path / "results" / "backtest_20230101_20230630.json"
    html = tmp_path / "results" / "backtest_20230101_20230630.html"
    assert saved.is_file()
    assert html.is_file()
    doc = json.loads(saved.read_text())
    assert doc["schema"] == "autotrader.backtest/1"
    assert doc["config"]["symbols"] == ["BTCUSDT", "ETHUSDT"]


def test_backtest_json_to_explicit_path(tmp_path):
    out = tmp_path / "run.json"
    result = run_cli("backtest", *FAST, "--output-format", "json", "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["summary"]["trades"] >= 1


def test_backtest_csv_writes_three_tables(tmp_path):
    out = tmp_path / "csv"
    result = run_cli("backtest", *FAST, "--output-format", "csv", "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("trades.csv", "equity.csv", "summary.csv"):
        assert (out / name).is_file()


def test_backtest_partial_history_symbol_is_clipped_and_user_told(tmp_path):
    result = run_cli(
        "backtest",
        "--strategy",
        "sma_cross",
        "--symbols",
        "BTCUSDT,STRKUSDT",
        "--period",
        "2024-01-01:2024-12-31",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "STRKUSDT: data only covers 2024-02-20 13:00" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "BTCUSDX"], "did you mean BTCUSDT"),
        (["--period", "2030-01-01:2030-12-31"], "no 1h data"),
        (["--period", "2020-01-01"], "expected FROM:TO"),
        (["--initial-capital", "-5"], "initial-capital"),
        (["--strategy", "sma_crossover"], "did you mean 'sma_cross'"),
        (["--strategy", "sma_cross", "--param", "fastt=10"], "did you mean 'fast'"),
        (["--risk", "wild"], "risk"),
        (["--signals", "/nonexistent/preds.csv"], "preds.csv"),
        (["--on-halt", "resume-after=soon"], "expected 'stop' or 'resume-after=DURATION'"),
    ],
)
def test_backtest_bad_input_is_one_clear_line(tmp_path, args, message):
    result = run_cli("backtest", "--quiet", *args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_backtest_check_lookahead_reports_pass_for_causal_strategy(tmp_path):
    result = run_cli(
        "backtest", "--strategy", "sma_cross", "--period", "2023-01-01:2023-03-31", "--check-lookahead", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Lookahead check: passed" in result.stdout


def test_backtest_piped_prints_progress_lines_summary_tree_and_stress_survival(tmp_path):
    result = run_cli(
        "backtest", "--strategy", "sma_cross", "--symbols", "BTCUSDT", "--period", "2023-01-01:2023-03-31",
        "--output-format", "json", "--stress-test", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "progress: backtest done 3/3 (100%)" in result.stderr  # piped: plain lines, not a bar
    assert "progress: stress: " in result.stderr
    out = result.stdout
    assert out.index("📊 BACKTEST REPORT") < out.index("🎯 SYMBOL PERFORMANCE") < out.index("RISK METRICS")
    doc = json.loads((tmp_path / "results" / "backtest_20230101_20230331.json").read_text())
    stress = doc["stress"]
    assert stress["total"] == 10
    assert f"Stress Test Survival: {stress['survived']}/10" in out

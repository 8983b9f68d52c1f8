"""`autotrader optimize --grid`: a full parameter grid from the command line (real processes, bundled data)."""

from __future__ import annotations

import json

from tests.e2e.test_cli_data import run_cli


def test_optimize_grid_prints_best_rows_and_saves_every_combination(tmp_path):
    result = run_cli(
        "optimize", "--strategy", "sma_cross", "--symbols", "BTCUSDT,ETHUSDT", "--period", "2023-01-01:2023-12-31",
        "--grid", "fast=5:50:5", "--grid", "slow=20:200:10", "--output", "grid.json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Swept 174 combinations" in result.stdout  # 10 x 19, less the 16 with fast >= slow
    assert "Best 20 by sharpe" in result.stdout
    saved = json.loads((tmp_path / "grid.json").read_text())
    assert len(saved["rows"]) == 174 and saved["skipped"] == 16
    assert {(r["fast"], r["slow"]) for r in saved["rows"]} >= {(5, 20), (45, 200)}
    assert all(r["trades"] > 0 for r in saved["rows"])


def test_optimize_grid_bad_input_gives_one_clear_line(tmp_path):
    bad_spec = run_cli("optimize", "--strategy", "sma_cross", "--grid", "fast=5-50", cwd=tmp_path)
    assert bad_spec.returncode != 0
    assert "--grid 'fast=5-50': expected name=LOW:HIGH:STEP" in bad_spec.stderr
    assert "Traceback" not in bad_spec.stderr
    other = run_cli("optimize", "--strategy", "rsi_reversion", "--grid", "lower=20:30:5", cwd=tmp_path)
    assert other.returncode != 0
    assert "has no compiled column sweep" in other.stderr

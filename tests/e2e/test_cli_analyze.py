"""`autotrader analyze` and `autotrader optimize` as a user runs them: real processes, bundled data."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.e2e.test_cli_data import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    "Metrics summary",
    "Charts",
    "Stress tests",
    "Monte Carlo",
    "Walk-forward optimisation",
    "Overfitting",
    "Validation scorecard",
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A saved 2023 sma_cross backtest and one full ``analyze --validate`` run over it.

    Only one test uses it: under pytest-xdist every worker would build its own module fixture.
    """
    root = tmp_path_factory.mktemp("analyze")
    env = {"AUTOTRADER_HOME": str(root / "home")}
    backtest = run_cli(
        "backtest", "--strategy", "sma_cross", "--period", "2023-01-01:2023-12-31", "--output-format", "json",
        "--output", "run.json", "--quiet", env=env, cwd=root,
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    analyzed = run_cli(
        "analyze", "--backtest-file", "run.json", "--generate-charts=true", "--stress-test=true",
        "--monte-carlo", "2000", "--validate", "--output-dir", "D", env=env, cwd=root,
    )  # fmt: skip
    return root, analyzed


def test_analyze_validate_prints_every_section_and_writes_its_files(workspace):
    root, result = workspace
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    positions = [out.index(title) for title in SECTIONS]
    assert positions == sorted(positions)  # in this order
    for text in (
        "Stress Test Survival: ",
        "trade bootstrap: 2,000 simulations",
        "P(loss)",
        "Walk-forward efficiency:",
        "Parameter stability",
        "Stitched out-of-sample record",
        "Deflated Sharpe ratio (walk-forward in-sample winners)",
        "PSR (walk-forward out-of-sample record, vs Sharpe 0)",
        "Deflated Sharpe per window",
        "Probability of backtest overfitting",
        # every figure names its basis where two bases meet (issue 16)
        "marked equity at 1h bar closes",
        "daily returns of marked equity, 365 days a year",
        "basis: closed-trade equity",
        "basis: daily returns of the marked equity curve",
        "backtest, same basis",
        "Basis: gross unit exposure",
        "/ 100",
        "100 × R² of log daily equity",
        "--validate turned on: walk-forward optimisation",
        "Permutation test p-value",
        "The performance figures are out-of-sample.",
        "Files written:",
        "monte_carlo_fan.png",
    ):
        assert text in out, text
    assert "Traceback" not in result.stderr

    charts = root / "D" / "charts"
    pngs = sorted(charts.glob("*.png"))
    assert len(pngs) == 11  # ten charts and the Monte Carlo fan
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in pngs)
    assert (charts / "charts.html").is_file()
    saved = json.loads((root / "D" / "analysis.json").read_text())
    assert set(saved) == {
        "validate", "metric_bases", "stress", "monte_carlo", "walk_forward", "overfitting", "scorecard",
    }  # fmt: skip
    assert saved["stress"]["total"] == 10
    assert saved["walk_forward"]["n_trials_run"] >= 100
    windows = saved["walk_forward"]["windows"]
    dsr_windows = saved["overfitting"]["dsr_windows"]
    valid = [sum(t["invalid"] is None for t in w["trials"]) for w in windows]
    assert [r["n_trials"] for r in dsr_windows] == valid
    assert [r["best_trial"] for r in dsr_windows] == [w["best_trial"] for w in windows]
    assert "in-sample winner" in saved["overfitting"]["dsr_basis"]
    assert "no selection penalty" in saved["overfitting"]["psr_oos_detail"]["basis"]
    assert "gross unit exposure" in saved["overfitting"]["permutation"]["basis"]
    assert saved["monte_carlo"]["results"]["trade_permutation"]["invariant_by_construction"]
    assert "closed-trade" in saved["monte_carlo"]["results"]["trade_bootstrap"]["basis"]
    assert "100 x R^2" in saved["metric_bases"]["stability_score"]
    assert saved["validate"]["left_off"] == []
    verdict = saved["scorecard"]["verdict"]
    assert verdict in ("PASS", "FAIL", "N/A")
    assert saved["scorecard"]["summary"].startswith(verdict)
    assert saved["scorecard"]["summary"][:40] in " ".join(out.split())


@pytest.mark.slow
def test_analyze_validate_pbo_dsr_psr_recompute_from_the_saved_files(workspace):
    # issue 16, done when: the printed PBO and DSR are reproduced from the saved Parquet files
    # by an independent recomputation (scripts/recompute_overfitting.py imports no autotrader)
    root, result = workspace
    assert result.returncode == 0, result.stdout + result.stderr
    script = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "recompute_overfitting.py"))
    mine = script["recompute"](root / "D")
    printed = json.loads((root / "D" / "analysis.json").read_text())["overfitting"]
    for key in ("pbo", "dsr", "psr_oos"):
        assert mine[key] == pytest.approx(printed[key], abs=1e-9), key
    out = " ".join(result.stdout.split())
    assert f"Probability of backtest overfitting {printed['pbo']:.3f}" in out
    assert f"Deflated Sharpe ratio (walk-forward in-sample winners) {printed['dsr']:.3f}" in out


def test_analyze_validate_keeps_stress_tests_off_when_asked(tmp_path):
    backtest = run_cli(
        "backtest", "--strategy", "sma_cross", "--symbols", "BTCUSDT", "--period", "2023-01-01:2023-06-30",
        "--output-format", "json", "--output", "run.json", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    result = run_cli(
        "analyze", "--backtest-file", "run.json", "--generate-charts=false", "--stress-test=false",
        "--monte-carlo", "0", "--validate", "--trials", "8", "--workers", "1", "--output-dir", "E", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "--validate turned on: walk-forward optimisation, validation scorecard" in out
    assert "Left off as asked: stress tests (--no-stress-test)" in out
    assert "Stress tests" not in result.stdout.replace("stress tests (--no-stress-test)", "")
    assert "the stress tests were switched off (--no-stress-test)" in out
    saved = json.loads((tmp_path / "E" / "analysis.json").read_text())
    assert "stress" not in saved
    assert saved["validate"]["left_off"]
    assert (tmp_path / "E" / "walk_forward_trial_returns.parquet").is_file()


def test_analyze_false_flags_skip_sections(tmp_path):
    backtest = run_cli(
        "backtest", "--strategy", "sma_cross", "--symbols", "BTCUSDT", "--period", "2023-01-01:2023-03-31",
        "--output-format", "json", "--output", "run.json", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    result = run_cli(
        "analyze", "--backtest-file", "run.json", "--generate-charts=false", "--stress-test=false",
        "--monte-carlo", "0", "--output-dir", "E", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Metrics summary" in result.stdout
    assert "Overfitting" in result.stdout
    for skipped in ("Charts", "Stress tests", "Monte Carlo", "Walk-forward optimisation", "Validation scorecard"):
        assert skipped not in result.stdout
    assert "no optimisation trials were run" in result.stdout
    assert not (tmp_path / "E" / "charts").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ('{"schema": "freqtrade/2", "trades": []}', "is not an autotrader backtest report"),
        ('{"schema": "autotrader.backtest/1", "config": {', "not valid JSON (truncated or corrupt?)"),
    ],
)
def test_analyze_bad_file_gives_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    result = run_cli("analyze", "--backtest-file", str(path), cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_analyze_rejects_a_non_boolean_flag_value(tmp_path):
    result = run_cli("analyze", "--backtest-file", "x.json", "--generate-charts=maybe", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not true or false" in result.stderr


def test_optimize_prints_windows_and_saves_json(tmp_path):
    result = run_cli(
        "optimize", "--symbols", "BTCUSDT", "--period", "2023-01-01:2023-12-31", "--trials", "8",
        "--is-days", "120", "--oos-days", "60", "--space", "fast=3:40", "--space", "slow=50:300",
        "--workers", "1", "--output", "wf.json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Walk-forward efficiency:" in result.stdout
    lines = result.stderr.splitlines()
    for k in (1, 2, 3, 4):  # piped output: one progress line per finished window on stderr, with the ETA
        line = next(ln for ln in lines if ln.startswith(f"progress: walk-forward window {k}/4: OOS"))
        assert f" {k}/4 ({100 * k / 4:.0f}%), elapsed " in line
        assert ("ETA" in line) == (k < 4)
    saved = json.loads((tmp_path / "wf.json").read_text())
    assert len(saved["windows"]) == 4
    assert all(len(w["trials"]) == 8 for w in saved["windows"])
    assert {s["name"] for s in saved["space"]} == {"fast", "slow"}
    trials = pq.read_table(tmp_path / "wf_walk_forward_trial_returns.parquet").to_pandas()  # PBO's input
    assert set(trials["window"]) == {1, 2, 3, 4} and trials.groupby("window")["trial"].nunique().eq(8).all()
    assert trials.groupby("window")["is_best"].any().all()
    oos = pq.read_table(tmp_path / "wf_walk_forward_oos_daily.parquet").to_pandas()
    assert len(oos) >= 4 * 60 - 1 and oos["equity"].notna().all()

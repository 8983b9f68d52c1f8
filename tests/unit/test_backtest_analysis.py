"""The analysis of a saved backtest, as a typed result: what each section found and why a figure is missing."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from autotrader.domain.errors import DataError
from autotrader.validation.analysis import (
    AnalysisOptions,
    BacktestAnalysis,
    BacktestAnalyzer,
    WalkForwardOptions,
    default_windows,
    saved_config,
)

SAVED = Path(__file__).resolve().parents[1] / "fuzz" / "seeds" / "backtest.json"


def _doc(**changes: object) -> dict:
    doc = copy.deepcopy(json.loads(SAVED.read_text()))
    doc.update(changes)
    return doc


def _options(**changes: object) -> AnalysisOptions:
    base = AnalysisOptions(
        generate_charts=False, stress_test=False, monte_carlo=0, walk_forward=False, validate=True,
        permutations=20, wf=WalkForwardOptions(),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def _no_store():  # type: ignore[no-untyped-def]
    raise AssertionError("no section here needs the candle store")


def test_analysis_without_walk_forward_scores_in_sample_figures_and_says_why_each_gate_is_missing():
    doc = _doc(trades=[])
    analyzer = BacktestAnalyzer(doc, saved_config(doc, SAVED), _options(), _no_store)
    analyzer.validate()
    analyzer.metrics()
    panel = analyzer.overfitting()
    card = analyzer.scorecard()
    result = analyzer.result()

    assert isinstance(result, BacktestAnalysis)
    assert set(result.to_dict()) == {"validate", "metric_bases", "overfitting", "scorecard"}
    assert result.stress is None and result.walk_forward is None and result.monte_carlo is None
    assert panel.dsr is None and panel.pbo is None and panel.psr_oos is None
    assert panel.dsr_reason == "no optimisation trials were run (add --walk-forward)"
    assert panel.to_dict()["permutation_reason"] == "the backtest made no trades"
    assert result.to_dict()["validate"]["left_off"] == ["stress tests (--no-stress-test): the stress gate will be N/A"]
    assert card.gate("stress_survival").reason == "the stress tests were switched off (--no-stress-test)"
    assert card.gate("pbo").reason == "no optimisation trials were run (add --walk-forward)"
    assert card.gate("accuracy").reason == "the strategy's signals have no forecast horizon"
    assert card.gate("sharpe_ratio").figure == pytest.approx(doc["summary"]["sharpe_ratio"])  # in-sample figure
    assert any("in-sample" in note for note in card.notes)
    assert result.to_dict()["scorecard"] == card.to_dict()


def test_the_result_is_frozen():
    doc = _doc(trades=[])
    analyzer = BacktestAnalyzer(doc, saved_config(doc, SAVED), _options(validate=False), _no_store)
    analyzer.metrics()
    result = analyzer.result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.stress = None  # type: ignore[misc]


def test_a_walk_forward_that_was_asked_for_but_failed_is_named_as_the_reason():
    doc = _doc(trades=[])
    analyzer = BacktestAnalyzer(doc, saved_config(doc, SAVED), _options(walk_forward=True), _no_store)
    assert analyzer.overfitting().pbo_reason == (
        "the walk-forward optimisation did not run (see above): no trials to count"
    )


def test_an_invalid_saved_configuration_is_one_data_error_naming_the_file():
    doc = _doc()
    doc["config"]["risk_level"] = "reckless"
    with pytest.raises(DataError, match=r"backtest\.json: the saved configuration is not valid \(risk_level"):
        saved_config(doc, SAVED)


@pytest.mark.parametrize(
    ("span_days", "windows"),
    [(0.0, (365.0, 90.0)), (730.0, (365.0, 90.0)), (400.0, (200.0, 50.0))],
    ids=["unknown", "two-years", "shorter"],
)
def test_default_walk_forward_windows(span_days, windows):
    assert default_windows(span_days) == windows

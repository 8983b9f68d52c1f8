"""Specification of autotrader.validation.scorecard: gates, boundaries, N/A reasons and the verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from autotrader.domain.errors import ConfigError
from autotrader.validation.scorecard import FAIL, NOT_AVAILABLE, PASS, Thresholds, build_scorecard

GOOD = {
    "accuracy": 0.70,
    "profit_factor": 2.1,
    "max_drawdown": -0.12,
    "sharpe_ratio": 1.4,
    "stress_survived": 9,
    "stress_scenarios": 10,
    "deflated_sharpe": 0.97,
    "oos_psr": 0.98,
    "pbo": 0.2,
    "sample": "out_of_sample",
}
GATE_KEYS = (
    "accuracy",
    "profit_factor",
    "max_drawdown",
    "sharpe_ratio",
    "stress_survival",
    "deflated_sharpe",
    "oos_psr",
    "pbo",
)


def test_scorecard_all_gates_pass() -> None:
    card = build_scorecard(GOOD)
    assert [g.key for g in card.gates] == list(GATE_KEYS)
    assert all(g.status == PASS for g in card.gates)
    assert card.verdict == PASS
    assert card.passed
    assert card.summary == "PASS: all 8 gates passed."
    assert card.notes == ("The performance figures are out-of-sample.",)
    assert card.gate("stress_survival").shown == "9/10"
    assert card.gate("accuracy").shown == "70.0%"
    assert card.gate("max_drawdown").shown == "12.0%"


@pytest.mark.parametrize(
    ("key", "value", "status"),
    [
        ("accuracy", 0.65, FAIL),  # strictly greater than 65 %
        ("accuracy", 0.6501, PASS),
        ("profit_factor", 1.8, FAIL),
        ("profit_factor", 1.81, PASS),
        ("profit_factor", "inf", PASS),  # no losing trade, as the JSON report writes it
        ("profit_factor", math.inf, PASS),
        ("max_drawdown", -0.20, FAIL),  # strictly less than 20 %
        ("max_drawdown", -0.1999, PASS),
        ("max_drawdown", 0.15, PASS),  # a positive magnitude is read the same way
        ("sharpe_ratio", 0.0, FAIL),
        ("sharpe_ratio", -0.3, FAIL),
        ("sharpe_ratio", 0.01, PASS),
        ("deflated_sharpe", 0.95, FAIL),
        ("deflated_sharpe", 0.951, PASS),
        ("oos_psr", 0.95, FAIL),
        ("oos_psr", 0.951, PASS),
        ("pbo", 0.5, FAIL),
        ("pbo", 0.49, PASS),
        ("accuracy", np.float64(0.7), PASS),  # numpy scalars are numbers
    ],
)
def test_scorecard_gate_boundaries(key: str, value: object, status: str) -> None:
    card = build_scorecard({**GOOD, key: value})
    assert card.gate(key).status == status
    assert card.verdict == status


@pytest.mark.parametrize(("survived", "status"), [(8, PASS), (7, FAIL), (10, PASS), (0, FAIL)])
def test_scorecard_stress_survival_needs_eight_of_ten(survived: int, status: str) -> None:
    card = build_scorecard({**GOOD, "stress_survived": survived})
    gate = card.gate("stress_survival")
    assert gate.status == status
    assert gate.shown == f"{survived}/10"


def test_scorecard_failure_is_stated_with_its_figure() -> None:
    card = build_scorecard({**GOOD, "profit_factor": 1.21, "max_drawdown": -0.243})
    assert card.verdict == FAIL
    assert not card.passed
    assert card.summary == (
        "FAIL: 2 of 8 evaluated gates failed (profit factor 1.21, needs > 1.80; max drawdown 24.3%, needs < 20.0%)."
    )


def test_scorecard_missing_figures_are_na_with_reasons_and_verdict_is_qualified() -> None:
    figures = {k: v for k, v in GOOD.items() if k not in ("deflated_sharpe", "pbo", "accuracy")}
    card = build_scorecard(figures, reasons={"deflated_sharpe": "no trial count was recorded"})
    assert card.gate("deflated_sharpe").status == NOT_AVAILABLE
    assert card.gate("deflated_sharpe").reason == "no trial count was recorded"
    assert card.gate("pbo").reason == "not provided"
    assert card.gate("pbo").figure is None
    assert card.gate("pbo").shown == "n/a"
    assert card.verdict == PASS
    assert card.summary.startswith("PASS on the 5 gates that could be evaluated; 3 of 8 could not")
    assert "deflated sharpe ratio (in-sample winners) (no trial count was recorded)" in card.summary


def test_scorecard_nan_figure_is_undefined_not_failed() -> None:
    card = build_scorecard({**GOOD, "profit_factor": math.nan}, reasons={})
    gate = card.gate("profit_factor")
    assert gate.status == NOT_AVAILABLE
    assert gate.reason == "undefined (not a number)"


def test_scorecard_a_failure_outweighs_missing_gates() -> None:
    card = build_scorecard({"sharpe_ratio": -0.5})
    assert card.verdict == FAIL
    assert card.summary.startswith("FAIL: 1 of 1 evaluated gates failed (sharpe ratio -0.50, needs > 0.00).")


def test_scorecard_nothing_to_judge_is_na() -> None:
    card = build_scorecard({})
    assert card.verdict == NOT_AVAILABLE
    assert not card.passed
    assert card.summary.startswith("N/A: no gate could be evaluated.")
    assert card.gate("stress_survival").reason == "stress_survived not provided"


def test_scorecard_in_sample_figures_are_called_in_sample() -> None:
    card = build_scorecard({**GOOD, "sample": "in_sample"})
    assert card.verdict == PASS
    assert "in-sample" in card.notes[0]
    assert "does not show" in card.notes[0]
    unknown = build_scorecard({k: v for k, v in GOOD.items() if k != "sample"})
    assert "not known" in unknown.notes[0]


def test_scorecard_custom_thresholds() -> None:
    card = build_scorecard(GOOD, thresholds=Thresholds(min_accuracy=0.75, max_pbo=0.1))
    assert card.gate("accuracy").status == FAIL
    assert card.gate("accuracy").requirement == "> 75.0%"
    assert card.gate("pbo").status == FAIL


def test_scorecard_to_dict_is_plain_json() -> None:
    card = build_scorecard({**GOOD, "profit_factor": "inf", "pbo": None})
    doc = card.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert doc["gates"][1]["figure"] == "inf"
    assert doc["verdict"] == PASS


@pytest.mark.parametrize(
    ("figures", "match"),
    [
        ({"acuracy": 0.7}, "Did you mean 'accuracy'"),
        ({"accuracy": 67}, "fraction"),
        ({"pbo": 1.5}, "fraction"),
        ({"max_drawdown": -25}, "fraction"),
        ({"sharpe_ratio": "high"}, "number"),
        ({"sharpe_ratio": True}, "number"),
        ({"stress_survived": 11, "stress_scenarios": 10}, "survived"),
        ({"stress_survived": 7.5, "stress_scenarios": 10}, "whole"),
        ({"sample": "walk_forward"}, "sample"),
    ],
)
def test_scorecard_bad_figures_are_config_errors(figures: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_scorecard(figures)


def test_scorecard_unknown_reason_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'pbo'"):
        build_scorecard(GOOD, reasons={"pob": "no matrix"})

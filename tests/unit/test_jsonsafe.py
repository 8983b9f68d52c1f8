"""json_safe: every document the project writes becomes strict JSON (no NaN/Infinity, no numpy types)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np

from autotrader.domain.jsonsafe import finite_or_none, json_safe


def _strict_roundtrip(obj: object) -> object:
    """What a strict JSON reader gets back: ``json.dumps`` refuses NaN/inf and non-JSON types."""
    return json.loads(json.dumps(json_safe(obj), allow_nan=False))


def test_nan_becomes_null_and_infinities_become_text() -> None:
    assert json_safe(math.nan) is None
    assert json_safe(math.inf) == "inf"
    assert json_safe(-math.inf) == "-inf"
    assert json_safe(1.5) == 1.5


def test_numpy_scalars_become_python_values_of_the_same_kind() -> None:
    out = json_safe([np.float64(0.25), np.int64(7), np.bool_(True), np.float32("nan"), np.float64("-inf")])
    assert out == [0.25, 7, True, None, "-inf"]
    assert [type(v) for v in out[:3]] == [float, int, bool]


def test_numpy_arrays_become_nested_lists_with_nan_and_inf_replaced() -> None:
    assert json_safe(np.array([[1, 2], [3, 4]], dtype=np.int64)) == [[1, 2], [3, 4]]
    assert json_safe(np.array([True, False])) == [True, False]
    assert json_safe(np.array([[1.0, np.nan], [np.inf, -np.inf]])) == [[1.0, None], ["inf", "-inf"]]


def test_nested_containers_keep_their_shape_with_text_keys() -> None:
    doc = {"a": (1, 2.0, [math.nan, {"b": np.float64(np.inf)}]), 3: {np.int64(4): "x"}}
    assert json_safe(doc) == {"a": [1, 2.0, [None, {"b": "inf"}]], "3": {"4": "x"}}


def test_dates_decimals_and_other_objects_become_text() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert json_safe({"at": when, "day": date(2024, 1, 2), "qty": Decimal("0.001000")}) == {
        "at": "2024-01-02T03:04:05+00:00",
        "day": "2024-01-02",
        "qty": "0.001000",
    }
    assert json_safe({3, 1, 2}) == [1, 2, 3]


def test_the_result_is_strict_json_that_reads_back_equal() -> None:
    doc = {"sharpe": np.float64(1.25), "curve": np.linspace(0.0, 1.0, 5), "pf": math.inf, "gap": math.nan}
    assert _strict_roundtrip(doc) == {"sharpe": 1.25, "curve": [0.0, 0.25, 0.5, 0.75, 1.0], "pf": "inf", "gap": None}


def test_the_input_is_not_changed() -> None:
    values = np.array([1.0, np.nan])
    doc = {"v": values, "t": [math.nan]}
    json_safe(doc)
    assert np.isnan(values[1]) and math.isnan(doc["t"][0])


def test_a_figure_that_is_only_meaningful_when_finite_is_none_otherwise() -> None:
    for missing in (None, math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")):
        assert finite_or_none(missing) is None
    assert finite_or_none(np.float64(0.25)) == 0.25 and type(finite_or_none(np.float64(0.25))) is float
    assert finite_or_none(-3) == -3.0 and type(finite_or_none(-3)) is float


def test_the_validation_reports_write_a_non_finite_figure_as_null() -> None:
    from autotrader.validation.montecarlo import Band
    from autotrader.validation.stress import StressRun

    assert Band(math.nan, 0.1, math.inf).to_dict() == {"p5": None, "p50": 0.1, "p95": None}
    run = StressRun("gap", "pass", math.inf, -math.inf, math.nan, 0, "")
    assert (run.to_dict()["total_return"], run.to_dict()["max_drawdown"], run.to_dict()["min_equity"]) == (
        None,
        None,
        None,
    )

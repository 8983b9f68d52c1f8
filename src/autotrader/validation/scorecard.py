"""The validation scorecard: the project's success criteria as pass/fail gates.

:func:`build_scorecard` takes a dict of figures — measured out of sample wherever the gate
says so — and checks each against its gate:

================  ==========================================  =========================
gate              figure (key in ``figures``)                 passes when
================  ==========================================  =========================
accuracy          ``accuracy``: share of signals whose        ``> 0.65``
                  direction was right (a fraction)
profit factor     ``profit_factor``: gross profit / gross     ``> 1.8``
                  loss (``inf`` / ``"inf"`` with no loss)
max drawdown      ``max_drawdown``: as ``metrics`` gives it   ``|max_drawdown| < 0.20``
                  (``-0.25`` = 25 %; the sign is ignored)
Sharpe ratio      ``sharpe_ratio`` (annualised)               ``> 0``
stress survival   ``stress_survived`` of ``stress_scenarios`` ``k / n ≥ 0.8`` (8/10)
deflated Sharpe   ``deflated_sharpe``: DSR, a probability,    ``> 0.95``
                  of the strategy's *selected* parameters
                  on the data they were selected on (see
                  below)
OOS PSR           ``oos_psr``: PSR of the out-of-sample       ``> 0.95``
                  record against a Sharpe ratio of 0
PBO               ``pbo``: probability of backtest            ``< 0.5``
                  overfitting
================  ==========================================  =========================

The two Sharpe gates ask different questions, each on its own basis. The **deflated Sharpe**
(Bailey & López de Prado 2014) is applied where a selection happened: the walk-forward's
in-sample winner of each window, deflated by that window's number of trials and the variance of
their Sharpe ratios (``analyze`` passes the median over the windows). The **OOS PSR** judges the
stitched out-of-sample record, which was not selected as the best of anything, against 0: no
selection penalty is charged twice.

Each gate is ``PASS``, ``FAIL`` or ``N/A``. ``N/A`` means the figure is missing (``None`` or
absent) or undefined (NaN); the gate says why — the reason given in ``reasons[key]`` if any,
else a generic one. The verdict is ``PASS`` only when at least one gate was evaluated and every
evaluated gate passed; ``FAIL`` when any gate failed; ``N/A`` when none could be evaluated. The
summary says how many gates passed, names every failure with its figure, and names every gate
left unevaluated: a verdict resting on fewer gates is not presented as a full pass.

``figures["sample"]`` may say where the performance figures come from: ``"out_of_sample"``
(walk-forward or a hold-out period) or ``"in_sample"``. In-sample figures are still checked,
but a note says plainly that passing on them proves nothing about new data; unknown provenance
is noted too.

Thresholds are in :class:`Thresholds`; pass another instance to change them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from autotrader.domain.errors import ConfigError

__all__ = [
    "FAIL",
    "FIGURE_KEYS",
    "NOT_AVAILABLE",
    "PASS",
    "Gate",
    "Scorecard",
    "Thresholds",
    "build_scorecard",
]

PASS: Final = "PASS"  # noqa: S105 - a verdict, not a password
FAIL: Final = "FAIL"
NOT_AVAILABLE: Final = "N/A"
Status = Literal["PASS", "FAIL", "N/A"]

FIGURE_KEYS: Final = (
    "accuracy",
    "profit_factor",
    "max_drawdown",
    "sharpe_ratio",
    "stress_survived",
    "stress_scenarios",
    "deflated_sharpe",
    "oos_psr",
    "pbo",
    "sample",
)
_SAMPLES: Final = ("out_of_sample", "in_sample")


@dataclass(frozen=True)
class Thresholds:
    """Gate thresholds (fractions, not percent)."""

    min_accuracy: float = 0.65
    min_profit_factor: float = 1.8
    max_drawdown: float = 0.20
    min_sharpe: float = 0.0
    min_stress_survival: float = 0.8
    min_deflated_sharpe: float = 0.95
    min_oos_psr: float = 0.95
    max_pbo: float = 0.5


@dataclass(frozen=True)
class Gate:
    """One gate: its status, the figure it judged (``None`` if unavailable) and why.

    ``shown`` is the figure as a person reads it (``"61.2%"``, ``"7/10"``), ``requirement`` the
    condition (``"> 65%"``), ``reason`` why it is ``N/A`` (``None`` otherwise).
    """

    key: str
    label: str
    status: Status
    figure: float | None
    shown: str
    requirement: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        figure = self.figure
        if figure is not None and math.isinf(figure):
            figure_json: float | str | None = "inf" if figure > 0 else "-inf"
        else:
            figure_json = figure
        return {
            "key": self.key,
            "label": self.label,
            "status": self.status,
            "figure": figure_json,
            "shown": self.shown,
            "requirement": self.requirement,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Scorecard:
    """Gates in a fixed order, the overall verdict, a one-line summary and plain notes."""

    gates: tuple[Gate, ...]
    verdict: Status
    summary: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def gate(self, key: str) -> Gate:
        for g in self.gates:
            if g.key == key:
                return g
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "gates": [g.to_dict() for g in self.gates],
            "notes": list(self.notes),
        }


def build_scorecard(
    figures: Mapping[str, Any],
    reasons: Mapping[str, str] | None = None,
    thresholds: Thresholds | None = None,
) -> Scorecard:
    """Judge ``figures`` against the gates (see the module docstring). Pure.

    ``reasons`` maps a figure key to why it is unavailable (``{"deflated_sharpe": "no trial
    count was recorded"}``). An unknown key, a figure that is not a number, or a fraction out of
    range (``accuracy = 67`` instead of ``0.67``) raises ``ConfigError`` with one clear line.
    """
    th = thresholds or Thresholds()
    why = dict(reasons or {})
    unknown = [k for k in (*figures, *why) if k not in FIGURE_KEYS]
    if unknown:
        raise ConfigError(_unknown_key_message(unknown[0]))
    values = {k: _number(k, figures.get(k)) for k in FIGURE_KEYS if k != "sample"}

    def reason(key: str, value: float | None) -> str:
        if key in why:
            return why[key]
        return "not provided" if value is None else "undefined (not a number)"

    gates = (
        _gate("accuracy", "Signal accuracy", values["accuracy"], lambda v: v > th.min_accuracy,
              _pct, f"> {_pct(th.min_accuracy)}", reason, fraction=True),
        _gate("profit_factor", "Profit factor", values["profit_factor"], lambda v: v > th.min_profit_factor,
              _ratio, f"> {_ratio(th.min_profit_factor)}", reason),
        _drawdown_gate(values["max_drawdown"], th, reason),
        _gate("sharpe_ratio", "Sharpe ratio", values["sharpe_ratio"], lambda v: v > th.min_sharpe,
              _ratio, f"> {_ratio(th.min_sharpe)}", reason),
        _stress_gate(values["stress_survived"], values["stress_scenarios"], th, why),
        _gate("deflated_sharpe", "Deflated Sharpe ratio (in-sample winners)", values["deflated_sharpe"],
              lambda v: v > th.min_deflated_sharpe, _prob, f"> {_prob(th.min_deflated_sharpe)}", reason,
              fraction=True),
        _gate("oos_psr", "PSR of the out-of-sample record (vs Sharpe 0)", values["oos_psr"],
              lambda v: v > th.min_oos_psr, _prob, f"> {_prob(th.min_oos_psr)}", reason, fraction=True),
        _gate("pbo", "Probability of backtest overfitting", values["pbo"], lambda v: v < th.max_pbo,
              _prob, f"< {_prob(th.max_pbo)}", reason, fraction=True),
    )  # fmt: skip
    verdict, summary = _verdict(gates)
    return Scorecard(gates=gates, verdict=verdict, summary=summary, notes=_notes(figures.get("sample")))


# --------------------------------------------------------------------------- gates


def _gate(
    key: str,
    label: str,
    value: float | None,
    passes: Callable[[float], bool],
    show: Callable[[float], str],
    requirement: str,
    reason: Callable[[str, float | None], str],
    *,
    fraction: bool = False,
) -> Gate:
    if value is None or math.isnan(value):
        return Gate(key, label, NOT_AVAILABLE, None, "n/a", requirement, reason(key, value))
    if fraction and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key} must be a fraction in [0, 1] (0.67 = 67 %), got {value:g}")
    return Gate(key, label, PASS if passes(value) else FAIL, value, show(value), requirement)


def _drawdown_gate(value: float | None, th: Thresholds, reason: Callable[[str, float | None], str]) -> Gate:
    requirement = f"< {_pct(th.max_drawdown)}"
    if value is None or math.isnan(value):
        return Gate("max_drawdown", "Max drawdown", NOT_AVAILABLE, None, "n/a", requirement,
                    reason("max_drawdown", value))  # fmt: skip
    depth = abs(value)
    if depth > 1.0:
        raise ConfigError(f"max_drawdown must be a fraction (-0.25 = 25 %), got {value:g}")
    status: Status = PASS if depth < th.max_drawdown else FAIL
    return Gate("max_drawdown", "Max drawdown", status, depth, _pct(depth), requirement)


def _stress_gate(survived: float | None, scenarios: float | None, th: Thresholds, why: Mapping[str, str]) -> Gate:
    requirement = f">= {_pct(th.min_stress_survival)} of scenarios survived"
    label = "Stress test survival"
    if survived is None or scenarios is None or math.isnan(survived) or math.isnan(scenarios):
        missing = "stress_survived" if survived is None or math.isnan(survived) else "stress_scenarios"
        text = why.get("stress_survived") or why.get("stress_scenarios") or f"{missing} not provided"
        return Gate("stress_survival", label, NOT_AVAILABLE, None, "n/a", requirement, text)
    if scenarios < 1 or survived < 0 or survived > scenarios or not (survived.is_integer() and scenarios.is_integer()):
        raise ConfigError(
            f"stress survival must be whole numbers 0 <= survived <= scenarios, got {survived:g}/{scenarios:g}"
        )
    share = survived / scenarios
    status: Status = PASS if share >= th.min_stress_survival else FAIL
    return Gate("stress_survival", label, status, share, f"{int(survived)}/{int(scenarios)}", requirement)


def _verdict(gates: tuple[Gate, ...]) -> tuple[Status, str]:
    evaluated = [g for g in gates if g.status != NOT_AVAILABLE]
    failed = [g for g in evaluated if g.status == FAIL]
    missing = [g for g in gates if g.status == NOT_AVAILABLE]
    tail = ""
    if missing:
        tail = " Not evaluated: " + "; ".join(f"{g.label.lower()} ({g.reason})" for g in missing) + "."
    if not evaluated:
        return NOT_AVAILABLE, f"N/A: no gate could be evaluated.{tail}"
    if failed:
        listed = "; ".join(f"{g.label.lower()} {g.shown}, needs {g.requirement}" for g in failed)
        return FAIL, f"FAIL: {len(failed)} of {len(evaluated)} evaluated gates failed ({listed}).{tail}"
    if missing:
        return PASS, (
            f"PASS on the {len(evaluated)} gates that could be evaluated; {len(missing)} of {len(gates)} "
            f"could not, so this is not a full validation.{tail}"
        )
    return PASS, f"PASS: all {len(gates)} gates passed."


def _notes(sample: Any) -> tuple[str, ...]:
    if sample == "out_of_sample":
        return ("The performance figures are out-of-sample.",)
    if sample == "in_sample":
        return (
            "The performance figures are in-sample (the strategy or its model saw this period): passing "
            "these gates does not show that it works on data it has not seen.",
        )
    if sample is None:
        return ("Whether the performance figures are out-of-sample is not known; the gates assume they are.",)
    raise ConfigError(f"sample must be one of {', '.join(_SAMPLES)}, got {sample!r}")


# --------------------------------------------------------------------------- helpers


def _number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value in ("inf", "-inf"):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if not isinstance(value, int | float):
        try:  # numpy scalars
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    return float(value)


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, FIGURE_KEYS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else f" Known figures: {', '.join(FIGURE_KEYS)}."
    return f"unknown scorecard figure {key!r}.{hint}"


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%"


def _ratio(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.2f}"


def _prob(v: float) -> str:
    return f"{v:.3f}"

"""The robot's metrics: counters, gauges and histograms it updates in-process (no web library here).

    metrics = RobotMetrics()
    metrics.signals.inc(verdict="accepted")
    metrics.latency.observe(0.004)
    text = metrics.render()         # the Prometheus text format, for reports and tests

``autotrader.api.control.ControlServer`` serves them at ``GET /metrics`` through
``prometheus_client`` (with ``/health`` and the kill switch), built and started by the CLI.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.values: dict[tuple[tuple[str, str], ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def total(self) -> float:
        return sum(self.values.values())

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_labels(dict(k))} {_num(v)}" for k, v in sorted(self.values.items())]
        return out


class Gauge:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.values: dict[tuple[tuple[str, str], ...], float] = {}

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = float(value)

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        out += [f"{self.name}{_labels(dict(k))} {_num(v)}" for k, v in sorted(self.values.items())]
        return out


class Histogram:
    """A cumulative-bucket histogram that also keeps raw samples (bounded) for percentiles."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], keep: int = 200_000) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0
        self.samples: list[float] = []
        self._keep = keep

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1
        if len(self.samples) < self._keep:
            self.samples.append(value)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the kept samples (nearest rank); NaN when empty."""
        if not self.samples:
            return math.nan
        ordered = sorted(self.samples)
        k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return ordered[k]

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            out.append(f'{self.name}_bucket{{le="{_num(bound)}"}} {running}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{self.name}_sum {_num(self.sum)}")
        out.append(f"{self.name}_count {self.count}")
        return out


class RobotMetrics:
    """Every metric the robot exports."""

    def __init__(self) -> None:
        self.signals = Counter("autotrader_signals_total", "Signal messages received, by intake verdict.")
        self.decisions = Counter("autotrader_decisions_total", "Decisions persisted, by outcome and reason.")
        self.orders = Counter("autotrader_orders_total", "Orders sent, by intent kind and result.")
        self.rejections = Counter("autotrader_order_rejections_total", "Orders the venue refused, by reason.")
        self.exchange_errors = Counter(
            "autotrader_exchange_errors_total", "Exchange calls that failed after the adapter's retries, by kind."
        )
        self.store_errors = Counter(
            "autotrader_store_errors_total", "State store transactions that failed and the robot went on, by where."
        )
        self.fills = Counter("autotrader_fills_total", "Executions recorded.")
        self.exchange_retries = Counter(
            "autotrader_exchange_retries_total",
            "Problems the exchange adapter absorbed (retries, look-ups after ambiguous answers, rate-limit waits).",
        )
        self.reconciliations = Counter("autotrader_reconciliations_total", "Reconciliation passes, by result.")
        self.latency = Histogram(
            "autotrader_signal_to_ack_seconds",
            "Signal received to order acknowledged by the exchange.",
            LATENCY_BUCKETS_S,
        )
        self.latency_by_kind: dict[str, Histogram] = {}
        self.loop_lag = Histogram("autotrader_loop_lag_seconds", "Event-loop scheduling lag.", LAG_BUCKETS_S)
        self.equity = Gauge("autotrader_equity", "Equity of the robot's capital (quote coin).")
        self.drawdown = Gauge("autotrader_drawdown_ratio", "Drawdown from the peak equity.")
        self.state = Gauge("autotrader_risk_state", "Risk engine state: 0 ACTIVE, 1 DAILY_BLOCKED, 2 HALTED.")
        self.kill_switch = Gauge("autotrader_kill_switch", "1 while the kill switch pauses entries.")
        self.positions = Gauge("autotrader_open_positions", "Open (tradable) positions.")
        self.heartbeat = Gauge("autotrader_heartbeat_timestamp_ms", "Last heartbeat (market clock, ms).")

    def observe_latency(self, seconds: float, kind: str) -> None:
        """Signal received → order acknowledged, overall and per intent kind (entry / exit)."""
        self.latency.observe(seconds)
        hist = self.latency_by_kind.get(kind)
        if hist is None:
            hist = self.latency_by_kind[kind] = Histogram(
                f"autotrader_signal_to_ack_{kind}_seconds",
                f"Signal received to {kind} order acknowledged.",
                LATENCY_BUCKETS_S,
            )
        hist.observe(seconds)

    def all(self) -> list[Counter | Gauge | Histogram]:
        return [
            self.signals,
            self.decisions,
            self.orders,
            self.rejections,
            self.exchange_errors,
            self.exchange_retries,
            self.store_errors,
            self.fills,
            self.reconciliations,
            self.latency,
            self.loop_lag,
            self.equity,
            self.drawdown,
            self.state,
            self.kill_switch,
            self.positions,
            self.heartbeat,
        ]

    def render(self) -> str:
        lines: list[str] = []
        for metric in [*self.all(), *self.latency_by_kind.values()]:
            lines += metric.render()
        return "\n".join(lines) + "\n"


class LogCounter(logging.Handler):
    """Counts WARNING-and-worse log records of a logger into ``counter`` (labelled by level)."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(logging.WARNING)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        self.counter.inc(level=record.levelname.lower())

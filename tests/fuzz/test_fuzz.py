"""Short fuzz pass of every input boundary (``python -m bench fuzz`` runs the same targets at volume).

Hypothesis drives each target two ways: through the target's own mutator (``st.randoms``: mutated
valid seeds) and with raw structured or binary values. No input may end "unhandled": an exception of
an unexpected type, a rejection of more than one line, or stored state changed by a rejected input.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_targets import (
    SEEDS,
    AnalyzeTarget,
    ConfigTarget,
    ExchangeTarget,
    ImportTarget,
    SignalTarget,
    Tally,
    Target,
    execute,
    fuzz,
    valid_signal,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SHORT = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


READ_BY_ANALYZE = ["total_return", "trades", "signal_accuracy", "first_bar", "last_bar", "bars", "strategy", "symbols"]


def opened(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target.open(tmp_path_factory.mktemp(target.name))
    yield target
    target.check()  # the stored state agrees with every verdict given
    target.close()


def run_one(target: Target, inp: Any) -> None:
    tally = Tally(target.name)
    execute(target, inp, tally)
    assert tally.unhandled == 0, tally.examples


@pytest.fixture(scope="module")
def signals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from opened(SignalTarget(), tmp_path_factory)


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from opened(ImportTarget(), tmp_path_factory)


@pytest.fixture(scope="module")
def analyze(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from opened(AnalyzeTarget(), tmp_path_factory)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from opened(ExchangeTarget(), tmp_path_factory)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from opened(ConfigTarget(), tmp_path_factory)


# ------------------------------------------------------------------------------------------ signals


@SHORT
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_signals_mutated_messages_decided_or_dead_lettered(signals: Target, rng: random.Random) -> None:
    run_one(signals, signals.generate(rng))


@SHORT
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "id": json_scalars,
            "symbol": json_scalars,
            "ts": st.integers() | json_scalars,
            "direction": json_scalars,
            "confidence": st.floats() | json_scalars,
            "horizon": st.from_regex(r"\d{1,25}[mhdwMHDW]", fullmatch=True) | json_scalars,
            "model": json_scalars,
        },
    ),
)
def test_fuzz_signals_any_field_values_decided_or_dead_lettered(signals: Target, fields: dict[str, Any]) -> None:
    run_one(signals, json.dumps({**valid_signal(0), **fields}).encode())


@SHORT
@given(raw=st.binary(max_size=300) | st.none())
def test_fuzz_signals_raw_bytes_dead_lettered(signals: Target, raw: bytes | None) -> None:
    run_one(signals, raw)


# ------------------------------------------------------------------------------------------- import


@SHORT
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_import_mutated_candle_files_imported_or_data_error(imports: Target, rng: random.Random) -> None:
    run_one(imports, imports.generate(rng))


@SHORT
@given(suffix=st.sampled_from([".csv", ".json", ".parquet"]), data=st.binary(max_size=300))
def test_fuzz_import_raw_bytes_data_error(imports: Target, suffix: str, data: bytes) -> None:
    run_one(imports, (suffix, data))


# ------------------------------------------------------------------------------------------ analyze


@SHORT
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_analyze_mutated_backtest_json_read_or_data_error(analyze: Target, rng: random.Random) -> None:
    run_one(analyze, analyze.generate(rng))


@SHORT
@given(
    key=st.sampled_from(["config", "period", "summary", "trades"]),
    value=json_values | st.dictionaries(st.sampled_from(READ_BY_ANALYZE), json_values, max_size=4),
)
def test_fuzz_analyze_any_section_value_read_or_data_error(analyze: Target, key: str, value: Any) -> None:
    doc = {**analyze.seed, key: value}  # type: ignore[attr-defined]
    run_one(analyze, json.dumps(doc).encode())


# ----------------------------------------------------------------------------------------- exchange


@SHORT
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_exchange_mutated_payloads_parsed_or_data_error(exchange: Target, rng: random.Random) -> None:
    run_one(exchange, exchange.generate(rng))


@SHORT
@given(i=st.integers(min_value=0, max_value=15), payload=json_values)
def test_fuzz_exchange_any_payload_parsed_or_data_error(exchange: Target, i: int, payload: Any) -> None:
    run_one(exchange, (i, payload))


# ------------------------------------------------------------------------------------------- config


@SHORT
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_config_mutated_toml_and_env_loaded_or_config_error(config: Target, rng: random.Random) -> None:
    run_one(config, config.generate(rng))


@SHORT
@given(
    text=st.text(max_size=200),
    env=st.dictionaries(st.sampled_from(["AUTOTRADER_KAFKA_SECURITY_PROTOCOL", "POSTGRES_DSN"]), st.text(max_size=20)),
)
def test_fuzz_config_any_text_loaded_or_config_error(config: Target, text: str, env: dict[str, str]) -> None:
    run_one(config, (text.encode("utf-8", "surrogatepass"), {**env, "AUTOTRADER_HOME": "/nonexistent"}))


# ---------------------------------------------------------------------------------------- the tally


def test_fuzz_run_counts_every_input_once() -> None:
    tally = fuzz(ExchangeTarget(), 300, seed=3)
    assert tally.tried == tally.accepted + tally.rejected + tally.unhandled == 300
    assert tally.accepted > 0
    assert tally.rejected > 0
    assert tally.unhandled == 0, tally.examples


# ------------------------------------------------------------------ regressions the fuzzer found


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        ("parse_ws_positions", {"topic": "position", "data": [None]}),
        ("parse_order_ack", {"retCode": [], "result": {}}),
        ("parse_balance", {"retCode": float("inf")}),
        ("parse_server_time", {"retCode": 0, "result": {"timeSecond": "1", "timeNano": [1]}}),
        ("parse_ws_kline", {"list": " ", "result": 0}),
    ],
)
def test_parser_malformed_payload_one_line_data_error(parse: str, payload: Any) -> None:
    from autotrader.adapters.exchange import parsers
    from autotrader.domain.errors import DataError

    with pytest.raises(DataError, match=r"^Bybit sent a malformed .* payload \(") as e:
        getattr(parsers, parse)(payload)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("summary", {"total_return": [1]}, "summary.total_return is not a number"),
        ("summary", {"total_return": 10**400}, "summary.total_return is not a number"),
        ("period", {"first_bar": 1, "last_bar": "x", "bars": 1}, "period.first_bar is not a date-time text"),
        ("config", {"symbols": ["BTCUSDT"]}, "config.strategy is not a text"),
        ("config", [], "'config' is not an object"),
    ],
)
def test_load_report_corrupt_section_data_error(tmp_path: Any, key: str, value: Any, problem: str) -> None:
    from autotrader.analytics.report_data import load_report
    from autotrader.domain.errors import DataError

    doc = json.loads((SEEDS / "backtest.json").read_text())
    doc[key] = value
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=f"is a corrupt report: {problem}"):
        load_report(path)


def test_load_settings_not_utf8_config_error(tmp_path: Any) -> None:
    from autotrader.config import load_settings
    from autotrader.domain.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_bytes(b'log_level = "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(path, env={"AUTOTRADER_HOME": str(tmp_path)})


def test_load_report_deeply_nested_json_data_error(tmp_path: Any) -> None:
    from autotrader.analytics.report_data import load_report
    from autotrader.domain.errors import DataError

    path = tmp_path / "b.json"
    path.write_text('{"schema": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match="nests too deeply"):
        load_report(path)

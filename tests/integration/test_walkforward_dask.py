"""Walk-forward across machines: a Dask cluster gives the process pool's result; PostgreSQL shares studies."""

from __future__ import annotations

import numpy as np
import pytest

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles
from autotrader.validation.walkforward import run_walk_forward

HOUR = 3_600_000
T0 = 1_672_531_200_000  # 2023-01-01T00:00:00Z
SPACE = {"fast": (2.0, 30.0), "slow": (40.0, 200.0)}


def _bars(days: int = 130, seed: int = 11) -> AlignedCandles:
    rng = np.random.default_rng(seed)
    n = days * 24
    drift = np.repeat(rng.normal(0.0, 0.0015, n // 240 + 1), 240)[:n]
    close = 100.0 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.006, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    cols = {"ts": T0 + HOUR * np.arange(n, dtype=np.int64), "open": open_, "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998, "close": close, "volume": np.full(n, 1e9)}  # fmt: skip
    return align({"AAAUSDT": Candles.from_columns(cols)})


@pytest.mark.slow
def test_dask_local_cluster_matches_process_pool():
    distributed = pytest.importorskip("distributed")
    config = BacktestConfig(symbols=("AAAUSDT",), strategy="sma_cross", start="2023-01-01", end="2023-12-31")
    kwargs = {"is_days": 60, "oos_days": 25, "n_trials": 10, "min_trades": 2, "search_space_overrides": SPACE}
    pooled = run_walk_forward(config, _bars(), workers=2, **kwargs)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        by_address = run_walk_forward(config, _bars(), scheduler=cluster.scheduler_address, **kwargs)
        by_client = run_walk_forward(config, _bars(), scheduler=client, **kwargs)
    assert len(pooled.windows) == 3
    assert by_address.execution.startswith("dask")
    assert by_address.to_dict(include_returns=True) == pooled.to_dict(include_returns=True)
    assert by_client.to_dict(include_returns=True) == pooled.to_dict(include_returns=True)


@pytest.mark.postgres
def test_optuna_postgres_storage_lets_two_machines_share_a_study(postgres_schema):
    """Machine A runs 6 trials per window; machine B (another seed) tops the same studies up to 10."""
    dsn, schema = postgres_schema
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
    config = BacktestConfig(symbols=("AAAUSDT",), strategy="sma_cross", start="2023-01-01", end="2023-12-31")
    kwargs = {"is_days": 60, "oos_days": 40, "min_trades": 2, "search_space_overrides": SPACE, "workers": 1}
    machine_a = run_walk_forward(config, _bars(100), n_trials=6, seed=0, storage=url, study_prefix="shared", **kwargs)
    machine_b = run_walk_forward(config, _bars(100), n_trials=10, seed=1, storage=url, study_prefix="shared", **kwargs)
    [wa], [wb] = machine_a.windows, machine_b.windows
    assert len(wa.trials) == 6
    assert len(wb.trials) == 10
    assert [t.params for t in wb.trials[:6]] == [t.params for t in wa.trials]  # A's trials, read back
    assert wb.trial_returns.shape[1] == wb.n_valid_trials
    np.testing.assert_array_equal(wb.trial_returns[:, : wa.n_valid_trials], wa.trial_returns)
    assert wb.best_score >= wa.best_score

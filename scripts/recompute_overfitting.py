"""Recompute the PBO, the per-window deflated Sharpe and the out-of-sample PSR of an analysis.

Usage: ``python scripts/recompute_overfitting.py ANALYSIS_DIR``

``ANALYSIS_DIR`` is the output folder of ``autotrader analyze --validate`` (or ``--walk-forward``).
Only its saved files are read: ``walk_forward_trial_returns.parquet`` (every trial's in-sample
daily returns per window), ``walk_forward_oos_daily.parquet`` (the stitched out-of-sample days)
and ``analysis.json`` (the printed figures, to compare). Nothing of ``autotrader`` is imported:
the formulas are written again from the papers with numpy, pandas and scipy.

* CSCV / PBO (Bailey, Borwein, López de Prado & Zhu 2017): drop the oldest ``T mod S`` rows, cut
  ``S`` equal blocks, for every choice of ``S/2`` blocks score each trial by ``mean / std`` on the
  chosen and the other blocks (a trial whose returns do not vary in a half scores 0 there), take
  the in-sample best (first on ties), its out-of-sample rank ``r`` (ties averaged),
  ``logit = ln(w / (1 - w))`` with ``w = r / (N + 1)``; PBO = share of logits <= 0. ``S`` is
  ``min(16, even part of T / 4)`` as ``analyze`` chooses it. The analysis prints the mean over
  the windows.
* DSR (Bailey & López de Prado 2014) per window: the winner's per-day Sharpe ``SR`` on its
  in-sample days, ``V`` the variance (ddof 1) of the window's trial Sharpe ratios, ``N`` its
  trials, ``SR0 = sqrt(V) ((1-g) Z(1-1/N) + g Z(1-1/(N e)))``,
  ``DSR = Phi((SR - SR0) sqrt(T-1) / sqrt(1 - g3 SR + (g4-1)/4 SR^2))``; the median over windows.
* PSR of the stitched out-of-sample daily returns against 0 (the same formula with ``SR0 = 0``).

Exit code 0 when every recomputed figure equals the printed one within 1e-9, else 1.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

EULER_GAMMA = 0.5772156649015329
TOLERANCE = 1e-9


def sharpe_per_column(x: np.ndarray) -> np.ndarray:
    flat = x.max(axis=0) == x.min(axis=0)
    sd = np.where(flat, 1.0, x.std(axis=0, ddof=1))
    constant = np.sign(x[0]) * np.where(x[0] == 0, 0.0, np.inf)
    return np.where(flat, constant, x.mean(axis=0) / sd)


def pbo(m: np.ndarray, s: int) -> float:
    m = m[m.shape[0] % s :]
    blocks = m.reshape(s, -1, m.shape[1])
    logits = []
    for chosen in itertools.combinations(range(s), s // 2):
        other = [i for i in range(s) if i not in chosen]
        train = blocks[list(chosen)].reshape(-1, m.shape[1])
        test = blocks[other].reshape(-1, m.shape[1])
        best = int(np.argmax(sharpe_per_column(train)))
        oos = sharpe_per_column(test)
        rank = np.sum(oos < oos[best]) + (np.sum(oos == oos[best]) + 1) / 2  # average rank, ties shared
        w = rank / (m.shape[1] + 1)
        logits.append(math.log(w / (1 - w)))
    return float(np.mean(np.array(logits) <= 0))


def psr(x: np.ndarray, sr0: float) -> float:
    sr = x.mean() / x.std(ddof=1)
    d = x - x.mean()
    g3 = np.mean(d**3) / np.mean(d**2) ** 1.5
    g4 = np.mean(d**4) / np.mean(d**2) ** 2
    return float(stats.norm.cdf((sr - sr0) * math.sqrt(x.size - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)))


def dsr(m: np.ndarray, best: int) -> float:
    sr = sharpe_per_column(m)
    n = m.shape[1]
    z = (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n) + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e))
    sr0 = math.sqrt(sr.var(ddof=1)) * z if n > 1 else 0.0
    return psr(m[:, best], sr0)


def recompute(folder: Path) -> dict[str, float]:
    trials = pd.read_parquet(folder / "walk_forward_trial_returns.parquet")
    pbos, dsrs = [], []
    for _, rows in trials.groupby("window", sort=True):
        m = rows.pivot_table(index="day", columns="trial", values="return", aggfunc="first").sort_index()
        best_trial = rows.loc[rows["is_best"], "trial"].iloc[0]
        matrix = m.to_numpy(dtype=np.float64)
        s = min(16, (matrix.shape[0] // 4) // 2 * 2)
        if matrix.shape[1] >= 2 and s >= 2:
            pbos.append(pbo(matrix, s))
        dsrs.append(dsr(matrix, list(m.columns).index(best_trial)))
    oos = pd.read_parquet(folder / "walk_forward_oos_daily.parquet")["return"].to_numpy()[1:]
    return {"pbo": float(np.mean(pbos)), "dsr": float(np.median(dsrs)), "psr_oos": psr(oos, 0.0)}


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else Path()
    mine = recompute(folder)
    printed = json.loads((folder / "analysis.json").read_text())["overfitting"]
    ok = True
    for key, value in mine.items():
        same = printed.get(key) is not None and abs(printed[key] - value) <= TOLERANCE
        ok &= same
        print(f"{key:8s} recomputed {value:.6f}   analysis.json {printed.get(key)}   {'same' if same else 'DIFFERENT'}")  # noqa: T201
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

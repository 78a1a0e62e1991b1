"""CMA-ES, the latent-space search (numpy only, no torch).

A compact (mu/mu_w, lambda)-CMA-ES after Hansen's "The CMA Evolution Strategy: A Tutorial":
rank-mu and rank-one covariance updates, cumulative step-size adaptation. The latent spaces here
are small (32 dimensions) so the full covariance is cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class CMAES:
    def __init__(self, x0: np.ndarray, sigma: float, seed: int, popsize: int | None = None
                 ) -> None:
        self.dim = n = len(x0)
        self.mean = np.asarray(x0, dtype=np.float64).copy()
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)
        self.lam = popsize or 4 + int(3 * np.log(n))
        self.mu = self.lam // 2
        w = np.log(self.mu + 0.5) - np.log(np.arange(1, self.mu + 1))
        self.weights = w / w.sum()
        self.mueff = 1.0 / np.sum(self.weights ** 2)
        self.cc = (4 + self.mueff / n) / (n + 4 + 2 * self.mueff / n)
        self.cs = (self.mueff + 2) / (n + self.mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + self.mueff)
        self.cmu = min(1 - self.c1, 2 * (self.mueff - 2 + 1 / self.mueff) /
                       ((n + 2) ** 2 + self.mueff))
        self.damps = 1 + 2 * max(0.0, np.sqrt((self.mueff - 1) / (n + 1)) - 1) + self.cs
        self.chin = np.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.pc = np.zeros(n)
        self.ps = np.zeros(n)
        self.C = np.eye(n)
        self.B = np.eye(n)
        self.D = np.ones(n)
        self.gen = 0

    def ask(self) -> np.ndarray:
        z = self.rng.standard_normal((self.lam, self.dim))
        return self.mean + self.sigma * (z * self.D) @ self.B.T

    def tell(self, xs: np.ndarray, fitness: np.ndarray) -> None:
        """Update from candidates ``xs`` and their costs (lower is better)."""
        n = self.dim
        order = np.argsort(fitness)
        sel = xs[order[:self.mu]]
        old = self.mean
        self.mean = self.weights @ sel
        y = (self.mean - old) / self.sigma
        inv_sqrt = self.B @ np.diag(1 / self.D) @ self.B.T
        self.ps = (1 - self.cs) * self.ps + np.sqrt(self.cs * (2 - self.cs) * self.mueff) * (
            inv_sqrt @ y)
        self.gen += 1
        hsig = (np.linalg.norm(self.ps) / np.sqrt(1 - (1 - self.cs) ** (2 * self.gen))
                / self.chin) < (1.4 + 2 / (n + 1))
        self.pc = (1 - self.cc) * self.pc + hsig * np.sqrt(self.cc * (2 - self.cc) * self.mueff
                                                           ) * y
        artmp = (sel - old) / self.sigma
        self.C = ((1 - self.c1 - self.cmu) * self.C
                  + self.c1 * (np.outer(self.pc, self.pc)
                               + (1 - hsig) * self.cc * (2 - self.cc) * self.C)
                  + self.cmu * (artmp.T * self.weights) @ artmp)
        self.sigma *= np.exp((self.cs / self.damps) * (np.linalg.norm(self.ps) / self.chin - 1))
        self.sigma = float(np.clip(self.sigma, 1e-4, 10.0))
        self.C = np.triu(self.C) + np.triu(self.C, 1).T
        d2, self.B = np.linalg.eigh(self.C)
        self.D = np.sqrt(np.maximum(d2, 1e-20))


def minimise(cost: Callable[[np.ndarray], np.ndarray], dim: int, seed: int, budget: int = 240,
             sigma: float = 0.8, x0: np.ndarray | None = None, good_enough: float = 0.0,
             check: Callable[[], None] | None = None) -> tuple[np.ndarray, float, int]:
    """Minimise a batched cost (``(lam, dim) -> (lam,)``); stops at ``good_enough`` or after
    ``budget`` evaluations. Returns ``(best x, best cost, evaluations)``."""
    es = CMAES(np.zeros(dim) if x0 is None else x0, sigma, seed)
    best_x, best_f, evals = es.mean.copy(), float("inf"), 0
    while evals < budget:
        if check is not None:
            check()
        xs = es.ask()
        f = np.asarray(cost(xs), dtype=np.float64)
        evals += len(xs)
        k = int(np.argmin(f))
        if f[k] < best_f:
            best_x, best_f = xs[k].copy(), float(f[k])
        if best_f <= good_enough:
            break
        es.tell(xs, f)
    return best_x, best_f, evals

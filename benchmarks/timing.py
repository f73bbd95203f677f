"""How the benchmarks time things, so that their ratios reproduce on a shared, noisy machine.

Everything compared is timed in the same rounds, one call of each in turn (:func:`rounds`),
so load from other processes falls on all of them alike; a ratio is the median of the
per-round ratios, and every figure comes with the half-width of its 95% bootstrap
interval over the rounds (:func:`interval`, :func:`ratio_interval`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interval(values: list[float], draws: int = 2000) -> tuple[float, float]:
    """The median of ``values`` and the half-width of its 95% bootstrap interval (nan with fewer than 3)."""
    values = np.asarray(values, dtype=float)
    median = float(np.median(values))
    if values.size < 3:
        return median, float("nan")
    rng = np.random.default_rng(0)
    boot = np.median(values[rng.integers(0, values.size, (draws, values.size))], axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return median, float(max(median - lo, hi - median))


def ratio_interval(times: list[float], reference: list[float]) -> tuple[float, float]:
    """The median of the per-round ratios ``times[i] / reference[i]`` and its 95% half-width."""
    return interval(list(np.asarray(times) / np.asarray(reference)))


def rounds(
    functions: dict[str, Callable[[], object]],
    *,
    warmup: int = 1,
    least: int = 5,
    most: int = 50,
    target: float = 0.05,
    reference: str | None = None,
    max_seconds: float = 600.0,
) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn round after round.

    After ``warmup`` untimed rounds, rounds go on (at least ``least``, at most ``most``, or until
    ``max_seconds`` have passed) until the 95% interval of every ratio to ``reference`` (the
    first function by default) is within ``+-target`` times the ratio (``+-0.05`` for a ratio
    near 1; a speed-up of 100x is then known to +-5).
    """
    reference = reference or next(iter(functions))
    times: dict[str, list[float]] = {name: [] for name in functions}
    started = time.perf_counter()
    for i in range(warmup + most):
        for name, fn in functions.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
        done = i + 1 - warmup
        if done < least:
            continue
        widths = [half / ratio for ratio, half in (ratio_interval(t, times[reference]) for t in times.values())]
        if max(w for w in widths if w == w) <= target or time.perf_counter() - started > max_seconds:
            break
    return times

"""How the benchmarks time things, so that their ratios reproduce on a shared, noisy machine.

Everything compared is timed in the same rounds, one call of each in turn (:func:`rounds`),
so load from other processes falls on all of them alike; a ratio is the median of the
per-round ratios, and every figure comes with the half-width of its 95% bootstrap
interval over the rounds (:func:`interval`, :func:`ratio_interval`).

Interleaving evens out load that comes and goes, not what stays for a whole process: where
the heap and the address space fall (ASLR), what the allocator has cached, the state of the
host for the minutes a run lasts. A benchmark whose rounds run in several fresh processes
(as pyperf runs every benchmark) takes its intervals from :func:`grouped_interval` and
:func:`grouped_ratio_interval`, which resample the processes as well as the rounds in them,
so that a difference between processes widens the interval instead of hiding in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

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


def grouped_interval(groups: Sequence[Sequence[float]], draws: int = 2000) -> tuple[float, float]:
    """The median of all values of ``groups`` (one group per process) and the half-width of its 95% interval.

    The interval is a two-level bootstrap: each draw picks as many groups as there are, with
    replacement, then as many values within each picked group as it has. With one group it
    is :func:`interval`.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        return float("nan"), float("nan")
    if len(arrays) == 1:
        return interval(arrays[0], draws)
    median = float(np.median(np.concatenate(arrays)))
    rng = np.random.default_rng(0)
    boot = np.empty(draws)
    for d, picks in enumerate(rng.integers(0, len(arrays), (draws, len(arrays)))):
        boot[d] = np.median(np.concatenate([arrays[p][rng.integers(0, arrays[p].size, arrays[p].size)] for p in picks]))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return median, float(max(median - lo, hi - median))


def grouped_ratio_interval(
    times: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]
) -> tuple[float, float]:
    """:func:`ratio_interval` over rounds held in several processes: per-round ratios, grouped by process."""
    return grouped_interval(
        [np.asarray(t, dtype=float) / np.asarray(r, dtype=float) for t, r in zip(times, reference, strict=True)]
    )


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
        if (
            max((w for w in widths if w == w), default=float("inf")) <= target
            or time.perf_counter() - started > max_seconds
        ):
            break
    return times

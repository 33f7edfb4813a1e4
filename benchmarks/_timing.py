"""Timing helpers shared by the benchmarks: interleaved rounds, medians, ratios, formatting.

On a noisy shared machine a single timing means little, and timing A fully before B lets a
burst of background load land on one of them only. So every helper here works in *rounds*:
in each round every candidate runs once (a calibrated batch of calls), in an order that
rotates from round to round, and the figure reported is the median over rounds. Ratios are
taken round by round (``paired_ratio``) and their median reported.

The clock is a parameter: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU time of
the whole process, all threads). On a shared machine where other jobs take the CPU away, the
process's CPU time of single-threaded code is the steadier measure of its cost: time spent
descheduled is not counted (caches and memory bandwidth are still shared).

>>> import math
>>> stats = interleaved({"a": lambda: math.sqrt(2.0), "b": lambda: sum(range(50))},
...                     rounds=3, target=0.001)
>>> sorted(stats), stats["a"].n
(['a', 'b'], 3)
>>> fmt_time(0.000_012_3), fmt_time(0.0123), fmt_time(12.3)
('12.3 µs', '12.3 ms', '12.3 s')
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "CLOCKS",
    "HeadToHead",
    "Stats",
    "calibrate",
    "fmt_ratio",
    "fmt_time",
    "head_to_head",
    "interleaved",
    "interleaved_once",
    "paired_ratio",
    "time_batch",
]


@dataclass(frozen=True)
class Stats:
    """Per-call times (seconds) of one candidate, one entry per round."""

    samples: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median over the rounds: how noisy the figure is."""
        m = self.median
        return (self.high - self.low) / m if m > 0 else 0.0


def paired_ratio(a: Stats | None, b: Stats | None) -> float | None:
    """The median over rounds of a's time over b's time in the same round.

    Under a load that drifts, a ratio of two figures from the same round (taken seconds
    apart) is steadier than the ratio of two medians. None when either is missing.

    >>> paired_ratio(Stats((2.0, 4.0, 9.0)), Stats((1.0, 2.0, 3.0)))
    2.0
    """
    if a is None or b is None or not a.n or a.n != b.n:
        return None
    ratios = [x / y for x, y in zip(a.samples, b.samples, strict=True) if y > 0]
    return statistics.median(ratios) if ratios else None


Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


def time_batch(fn: Callable[[], object], number: int, clock: Clock = time.perf_counter) -> float:
    """Seconds per call of ``fn()``, over ``number`` calls, with the garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in range(number):
            fn()
        elapsed = clock() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / number


def calibrate(
    fn: Callable[[], object], target: float = 0.05, max_number: int = 1_000_000,
    clock: Clock = time.perf_counter,
) -> int:
    """How many calls make a batch of about ``target`` seconds (at least 1)."""
    number = 1
    while True:
        elapsed = time_batch(fn, number, clock) * number
        if elapsed >= target / 4 or number >= max_number:
            break
        number *= 4 if elapsed < target / 40 else 2
    if elapsed <= 0:
        return min(number, max_number)
    return max(1, min(max_number, round(number * target / elapsed)))


def _rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    rounds: int = 7,
    target: float = 0.05,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> dict[str, Stats]:
    """Time every zero-argument candidate in interleaved rounds; per-call ``Stats`` by name.

    Each candidate is warmed up ``warmup`` times and calibrated so one batch takes about
    ``target`` seconds; then ``rounds`` rounds each run one batch of every candidate, in an
    order rotated by one from round to round.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    numbers = {name: calibrate(candidates[name], target, clock=clock) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in _rotated(names, r):
            samples[name].append(time_batch(candidates[name], numbers[name], clock))
    return {name: Stats(tuple(s)) for name, s in samples.items()}


def interleaved_once(
    makers: Mapping[str, Callable[[], object]],
    rounds: int = 5,
    before: Callable[[], object] | None = None,
    budget: float | None = None,
    clock: Clock = time.perf_counter,
) -> tuple[dict[str, Stats], dict[str, object], dict[str, BaseException]]:
    """Time one call of each maker per round (for compile times), interleaved.

    Returns the ``Stats`` of the makers that succeeded, the last result of each, and the
    exception of each maker that failed (a failed maker is not tried again). ``before`` runs
    untimed before every timed call (for example to clear a cache). A maker that has used
    more than ``budget`` seconds in all is not repeated (its figure has fewer samples).
    """
    names = list(makers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, object] = {}
    failures: dict[str, BaseException] = {}
    for r in range(rounds):
        for name in _rotated(names, r):
            if name in failures or (budget is not None and sum(samples[name]) > budget):
                continue
            if before is not None:
                before()
            start = clock()
            try:
                result = makers[name]()
            except (Exception, RecursionError) as e:  # reported, not raised: the race goes on
                failures[name] = e
                continue
            samples[name].append(clock() - start)
            results[name] = result
    stats = {name: Stats(tuple(s)) for name, s in samples.items() if s}
    return stats, results, failures


@dataclass(frozen=True)
class HeadToHead:
    """A against B, batch by batch: the median of the per-pair ratios and its quartiles."""

    ratio: float
    low: float  # first quartile of the per-pair ratios
    high: float  # third quartile
    a: Stats
    b: Stats

    def __str__(self) -> str:
        return f"{self.ratio:.2f}× (quartiles {self.low:.2f}–{self.high:.2f})"


def head_to_head(
    a: Callable[[], object],
    b: Callable[[], object],
    pairs: int = 21,
    target: float = 0.02,
    clock: Clock = time.perf_counter,
) -> HeadToHead:
    """Time ``a`` against ``b`` in adjacent batches, ABBA-ordered, and compare pair by pair.

    The two batches of a pair run back to back, and the order alternates (AB, BA, AB, ...),
    so a load that comes and goes weighs on both alike; the ratio reported is the median
    over the pairs, with its quartiles as the uncertainty.
    """
    a(), b()
    number = max(1, min(calibrate(a, target, clock=clock), calibrate(b, target, clock=clock)))
    ta: list[float] = []
    tb: list[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            ta.append(time_batch(a, number, clock))
            tb.append(time_batch(b, number, clock))
        else:
            tb.append(time_batch(b, number, clock))
            ta.append(time_batch(a, number, clock))
    ratios = sorted(x / y for x, y in zip(ta, tb, strict=True) if y > 0)
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return HeadToHead(statistics.median(ratios), q[0], q[2], Stats(tuple(ta)), Stats(tuple(tb)))


def fmt_time(seconds: float | None) -> str:
    """``12.3 µs``, ``4.56 ms``, ``1.23 s``: three significant figures."""
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def fmt_ratio(ratio: float | None) -> str:
    """``1.04×``; ``–`` when there is nothing to compare."""
    if ratio is None:
        return "–"
    return f"{ratio:.2f}×" if ratio < 100 else f"{ratio:.0f}×"

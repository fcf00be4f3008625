"""Timing primitives shared by the suites: round-robin repetitions and robust statistics.

Why round-robin: on a shared machine the speed drifts by tens of percent over minutes. Timing
method A for a minute and then method B would turn that drift into a fake difference. Here
every repetition ("round") calls each variant once, in an order rotated from round to round,
so slow periods fall on all variants alike. Ratios are taken *within a round* (paired) and the
median over rounds is reported, with the inter-quartile range of those paired ratios.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import torch


@dataclass
class Stats:
    """Median and spread of repeated measurements (seconds, or a ratio)."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stats":
        if not values:
            raise ValueError("Stats.of needs at least one value")
        v = sorted(values)
        if len(v) >= 2:
            q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
        else:
            q1 = q3 = v[0]
        return cls(statistics.median(v), q1, q3, v[0], v[-1], len(v))

    def as_dict(self, scale: float = 1.0, digits: int = 4) -> dict[str, float | int]:
        return {k: (round(getattr(self, k) * scale, digits) if k != "n" else self.n)
                for k in ("median", "q1", "q3", "min", "max", "n")}


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def round_robin(fns: Mapping[str, Callable[[], object]], warmup: int, reps: int,
                device: torch.device | str = "cpu", on_round: Callable[[int], None] | None = None,
                cpu_times: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Call every fn once per round for ``warmup + reps`` rounds; return the timed rounds' seconds.

    The order of the variants is rotated each round (round i starts at variant i mod n), so
    no variant is always first after, e.g., a garbage-collection-heavy neighbour.
    ``cpu_times``, when given, is filled with the process CPU seconds (``time.process_time``)
    of the same calls: on a CPU shared with other jobs it leaves out the time this process
    waited for a core, which the wall clock counts.
    """
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rnd in range(warmup + reps):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            synchronize(device)
            if rnd >= warmup:
                times[name].append(time.perf_counter() - t0)
                if cpu_times is not None:
                    cpu_times.setdefault(name, []).append(time.process_time() - c0)
        if on_round is not None:
            on_round(rnd)
    return times


def paired_ratio(times: Mapping[str, list[float]], num: str, den: str) -> Stats:
    """Per-round ratio num/den (both timed in the same round), summarised over rounds."""
    a, b = times[num], times[den]
    return Stats.of([x / y for x, y in zip(a, b)])

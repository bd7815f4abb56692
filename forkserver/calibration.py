"""Calibration: an input kept for the queue is run several times on its own, as AFL's
calibrate_case does. It yields the input's edges and mean exec time, and the edges whose
hit-count bucket changed between identical runs (variable edges). The campaign's
stability is the share of covered edges that never varied."""
from dataclasses import dataclass

import numpy as np

from .executors import Executor, ExecResult, Outcome
from .observers import BUCKETS

CAL_CYCLES = 8


@dataclass
class Calibration:
    outcome: Outcome
    edges: np.ndarray          # map indices the first run hit (index 0 left out)
    exec_us: float
    variable: np.ndarray       # map indices whose bucket changed between runs
    first: ExecResult
    runs: int                  # how many runs it took


def calibrate(executor: Executor, data: bytes, runs: int = CAL_CYCLES) -> Calibration:
    """Runs data `runs` times; stops early if a run does not end ok (the result says
    how it ended: a flaky crash or hang is not queued)."""
    first = executor.run(data, keep_map=True)
    reference = BUCKETS[first.coverage.counts]
    edges = first.coverage.edge_ids.astype(np.uint32)
    if first.outcome is not Outcome.OK:
        return Calibration(first.outcome, edges, first.exec_us, np.zeros(0, np.uint32), first, 1)
    times = [first.exec_us]
    varies = np.zeros(reference.size, dtype=bool)
    for _ in range(runs - 1):
        r = executor.run(data, keep_map=True)
        if r.outcome is not Outcome.OK:
            return Calibration(r.outcome, edges, float(np.mean(times)), np.flatnonzero(varies).astype(np.uint32),
                               r, len(times) + 1)
        times.append(r.exec_us)
        varies |= BUCKETS[r.coverage.counts] != reference
    varies[0] = False
    return Calibration(Outcome.OK, edges, float(np.mean(times)), np.flatnonzero(varies).astype(np.uint32), first,
                       runs)


class Stability:
    """The campaign's variable edges, as AFL counts them for its `stability` figure."""

    def __init__(self):
        self.variable: set[int] = set()

    def add(self, variable: np.ndarray) -> None:
        self.variable.update(variable.tolist())

    def percent(self, edges_seen: int) -> float:
        if edges_seen <= 0:
            return 100.0
        return max(0.0, 100.0 * (1 - len(self.variable) / edges_seen))

"""Feedbacks: which runs are worth keeping, as AFL decides it.

- CoverageFeedback: an ok run that reached a new edge or a new hit-count bucket
  (has-new-bits against the virgin map; the snapshot runner decides it in the batch).
- ObjectiveFeedback: a crash (or a hang) worth saving. AFL de-duplicates them by their
  simplified trace, each edge only hit or not hit, against a virgin map of their own, so
  a crash counts when it reaches an edge no saved crash reached; a sanitizer summary not
  seen before counts too (the same path can hold two different bugs)."""
import numpy as np

from .executors import ExecResult, Outcome
from .novelty import Novelty, VirginMap


class CoverageFeedback:
    """Keeps ok runs that added coverage; the virgin map is the executor's own."""

    def __init__(self, virgin: VirginMap):
        self.virgin = virgin

    def is_interesting(self, result: ExecResult) -> bool:
        return result.outcome is Outcome.OK and result.novelty not in (None, Novelty.NONE)


def simplify(counts: np.ndarray) -> np.ndarray:
    """AFL's simplify_trace: 1 for an edge not hit, 128 for one hit any number of times.
    Byte 0 (the runtime's "I ran" byte) is left at 0."""
    out = np.where(counts != 0, np.uint8(128), np.uint8(1)).astype(np.uint8)
    out[0] = 0
    return out


class ObjectiveFeedback:
    """Unique crashes (outcome CRASH) or hangs (outcome TIMEOUT): results must carry
    their map (run with keep_map=True)."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome
        self.virgin = VirginMap()
        self.summaries: set[str] = set()

    def is_interesting(self, result: ExecResult) -> bool:
        if result.outcome is not self.outcome:
            return False
        if result.coverage is None:
            raise ValueError("an objective needs the run's map: run it with keep_map=True")
        new_path = self.virgin.update(simplify(result.coverage.counts)) is not Novelty.NONE
        new_bug = bool(result.sanitizer) and result.sanitizer not in self.summaries
        if result.sanitizer:
            self.summaries.add(result.sanitizer)
        return new_path or new_bug

    def close(self) -> None:
        self.virgin.close()

"""Feedbacks (forkserver/feedbacks.py) on hand-made results: AFL's simplified-trace
de-duplication of crashes and hangs, sanitizer summaries, and coverage."""
import numpy as np
import pytest

from forkserver.executors import ExecResult, Outcome
from forkserver.feedbacks import CoverageFeedback, ObjectiveFeedback, simplify
from forkserver.novelty import Novelty, VirginMap
from forkserver.observers import CoverageMap

SIZE = 64


def run(outcome: Outcome, hit: list[int], sanitizer: str = "", counts: int = 1) -> ExecResult:
    m = np.zeros(SIZE, dtype=np.uint8)
    m[0] = 1
    m[hit] = counts
    return ExecResult(outcome, coverage=CoverageMap(m), sanitizer=sanitizer)


def test_simplify_is_afls():
    m = np.array([1, 0, 1, 7, 255, 0], dtype=np.uint8)
    assert simplify(m).tolist() == [0, 1, 128, 128, 128, 1]


def test_crashes_are_unique_by_their_simplified_trace():
    crashes = ObjectiveFeedback(Outcome.CRASH)
    try:
        assert crashes.is_interesting(run(Outcome.CRASH, [3, 4]))
        assert not crashes.is_interesting(run(Outcome.CRASH, [3, 4], counts=9)), "hit counts do not matter"
        assert crashes.is_interesting(run(Outcome.CRASH, [3, 4, 9])), "a new edge does"
        assert not crashes.is_interesting(run(Outcome.CRASH, [3, 4, 9]))
        # as in AFL, an edge seen not hit for the first time is new as well
        assert crashes.is_interesting(run(Outcome.CRASH, [3]))
        assert not crashes.is_interesting(run(Outcome.OK, [20])), "not a crash"
        assert not crashes.is_interesting(run(Outcome.TIMEOUT, [21])), "a hang is another objective"
    finally:
        crashes.close()


def test_a_new_sanitizer_summary_is_a_new_crash_on_the_same_path():
    crashes = ObjectiveFeedback(Outcome.CRASH)
    try:
        assert crashes.is_interesting(run(Outcome.CRASH, [5], "AddressSanitizer: heap-buffer-overflow"))
        assert not crashes.is_interesting(run(Outcome.CRASH, [5], "AddressSanitizer: heap-buffer-overflow"))
        assert crashes.is_interesting(run(Outcome.CRASH, [5], "AddressSanitizer: heap-use-after-free"))
        with pytest.raises(ValueError, match="keep_map=True"):
            crashes.is_interesting(ExecResult(Outcome.CRASH))
    finally:
        crashes.close()


def test_hangs_have_their_own_map():
    hangs = ObjectiveFeedback(Outcome.TIMEOUT)
    try:
        assert hangs.is_interesting(run(Outcome.TIMEOUT, [1, 2]))
        assert not hangs.is_interesting(run(Outcome.TIMEOUT, [1, 2]))
    finally:
        hangs.close()


def test_coverage_feedback_keeps_ok_runs_that_added_coverage():
    v = VirginMap()
    try:
        keep = CoverageFeedback(v)
        assert keep.is_interesting(ExecResult(Outcome.OK, novelty=Novelty.NEW_BUCKET))
        assert not keep.is_interesting(ExecResult(Outcome.OK, novelty=Novelty.NONE))
        assert not keep.is_interesting(ExecResult(Outcome.CRASH, novelty=None))
    finally:
        v.close()

"""Per-input novelty (AFL's has-new-bits), decided in the snapshot runner for every
input of a batch, and by the orchestrator for its own runs.

- The C code (csrc/common/fs_novelty.h, shared by the runtime and the helpers) against a
  reference written out here from AFL's has_new_bits, on hand-made and random maps.
- A batch of 256 inputs with exactly one that reaches new coverage flags exactly that one.
- Fork mode, snapshot mode one input per wake-up and snapshot mode in batches classify a
  long random run identically, input by input.
"""
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import HARNESS_DIR
from forkserver.executors import ForkExecutor, Outcome, SnapshotExecutor
from forkserver.novelty import Novelty, VirginMap
from forkserver.target import Target

AFL_BUCKETS = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 4), (4, 7, 8), (8, 15, 16), (16, 31, 32),
               (32, 127, 64), (128, 255, 128)]


def afl_bucket(count: int) -> int:
    return next(b for lo, hi, b in AFL_BUCKETS if lo <= count <= hi)


def afl_has_new_bits(counts: list[int], virgin: list[int]) -> int:
    """AFL's has_new_bits on a bucketed trace, byte by byte; updates virgin."""
    ret = 0
    for i, c in enumerate(counts):
        b = afl_bucket(c)
        if b & virgin[i]:
            ret = 2 if virgin[i] == 0xFF else max(ret, 1)
            virgin[i] &= ~b & 0xFF
    return ret


def test_hand_made_maps():
    v = VirginMap()
    try:
        m = np.zeros(64, dtype=np.uint8)
        assert v.update(m) is Novelty.NONE
        m[0] = 1
        assert v.update(m) is Novelty.NONE, "byte 0, the 'I ran' byte, is not an edge"
        m[17] = 1
        assert v.update(m) is Novelty.NEW_EDGE
        assert v.update(m) is Novelty.NONE
        m[17] = 3
        assert v.check(m) is Novelty.NEW_BUCKET and v.check(m) is Novelty.NEW_BUCKET, "check() changes nothing"
        assert v.update(m) is Novelty.NEW_BUCKET
        m[17] = 2
        assert v.update(m) is Novelty.NEW_BUCKET, "2 is a bucket of its own, below 3"
        m[17] = 200
        m[63] = 9
        assert v.update(m) is Novelty.NEW_EDGE
        assert v.edges_seen(64) == 2
    finally:
        v.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 70), st.integers(1, 255)), max_size=12), min_size=1, max_size=8),
       st.integers(1, 71))
def test_matches_afl_reference(runs, size):
    """A sequence of sparse maps of any size (not only multiples of 8: the C code skips
    zeros a word at a time) classifies as AFL's code does."""
    v = VirginMap()
    try:
        ref_virgin = [0] + [0xFF] * (size - 1)
        for run in runs:
            m = np.zeros(size, dtype=np.uint8)
            for i, c in run:
                if i < size:
                    m[i] = c
            counts = m.tolist()
            counts[0] = 0  # the reference knows nothing of byte 0; virgin[0] is 0 on both sides
            assert v.update(m) == afl_has_new_bits(counts, ref_virgin)
            assert v.array[:size].tolist() == ref_virgin
    finally:
        v.close()


# ---- in the runner ----


@pytest.fixture(scope="module")
def maze():
    target = Target.from_command([str(HARNESS_DIR / "maze.c")])
    yield target
    target.cleanup()


def test_a_batch_flags_exactly_the_new_input(maze):
    v = VirginMap()
    try:
        ex = SnapshotExecutor(maze, 2000, cpu=None)
        ex.use_virgin(v)
        with ex:
            first = ex.run(b"hello")
            assert first.novelty is Novelty.NEW_EDGE
            # each batch has one input going one level deeper than any before it
            for where, deeper in ((0, b"MAZE!"), (77, b"MAZE!LEFT"), (255, b"MAZE!EXIT")):
                batch = [b"hello"] * 256
                batch[where] = deeper
                got = ex.run_batch(batch, collect_maps=False)
                flagged = [i for i, r in enumerate(got) if r.novelty is not Novelty.NONE]
                assert flagged == [where] and got[where].novelty is Novelty.NEW_EDGE
                assert all(r.outcome is Outcome.OK for r in got)
            again = ex.run_batch([b"MAZE!EXIT", b"MAZE!"] * 128, collect_maps=False)
            assert all(r.novelty is Novelty.NONE for r in again), "nothing is new twice"
            assert ex.runners_started == 1, "one wake-up per batch, one runner in all"
    finally:
        v.close()


def random_maze_inputs(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    words = [b"MAZE!", b"MAZE!LEFT", b"MAZE!EXIT", b"FUN", b"FUZ", b"MA", b"hello", b""]
    out = []
    for _ in range(count):
        d = bytearray(rng.choice(words))
        for _ in range(rng.randint(0, 3)):
            if d and rng.random() < 0.7:
                d[rng.randrange(len(d))] = rng.choice(b"MAZE!LFTXIUNZ")
            else:
                d.insert(rng.randint(0, len(d)), rng.randrange(256))
        out.append(bytes(d))
    out[count // 2] = b"FUZZ"  # one crash: it ends its batch and costs a runner
    return out


def classify(executor, inputs: list[bytes], batched: bool) -> list[tuple]:
    v = VirginMap()
    try:
        executor.use_virgin(v)
        with executor:
            results = executor.run_batch(inputs, collect_maps=False) if batched else [executor.run(d) for d in inputs]
        return [(r.outcome.value, r.signal, r.novelty) for r in results]
    finally:
        v.close()


def test_batched_and_unbatched_classification_agree(maze):
    inputs = random_maze_inputs(3000, seed=7)
    fork = classify(ForkExecutor(maze, 2000, cpu=None), inputs, batched=False)
    single = classify(SnapshotExecutor(maze, 2000, cpu=None), inputs, batched=False)
    batched = classify(SnapshotExecutor(maze, 2000, cpu=None), inputs, batched=True)
    assert fork == single == batched
    found = [i for i, r in enumerate(fork) if r[2] not in (None, Novelty.NONE)]
    assert len(found) >= 5, "the run reaches new coverage now and then"
    crash = fork[len(inputs) // 2]
    assert crash[:2] == ("crash", 6) and crash[2] is None, "a crash is not classified against the main map"


@pytest.mark.parametrize("mode", ["exec", "fork", "snapshot", "auto"])
def test_one_batch_api_on_every_executor(maze, mode):
    """run_batch(inputs) on every executor gives the same results as fork mode run by
    run; snapshot mode (auto included) sends them to the runner in one wake-up."""
    from forkserver.executors import make_executor

    inputs = [b"hello", b"MAZE!", b"MAZE!EXIT", b"FUN", b"MAZE!LEFT", b"", b"MA", b"FUNNY"]
    with ForkExecutor(maze, 2000, cpu=None) as ref:
        want = [(r.outcome, r.exit_code, r.map_hash) for r in (ref.run(d) for d in inputs)]
    ex = make_executor(mode, maze, 2000)
    with ex:
        got = ex.run_batch(inputs, collect_maps=False)
        snapshot = getattr(ex, "active", ex)
        if mode in ("snapshot", "auto"):
            assert snapshot.wakeups == 1
    assert [(r.outcome, r.exit_code, r.map_hash) for r in got] == want

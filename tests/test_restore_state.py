"""Kernel-side state in snapshot mode: every piece an input changes comes back (fork
mode's results), --verify-restore names a piece a restore leaves out, and the runner
protocol stays in step however short the timeout."""
import pytest

from conftest import BACKEND_PARAMS, BACKENDS, TEST_HARNESS_DIR, cli, isolated_python, one_error_line
from forkserver.build import build
from forkserver.executors import ForkExecutor, SnapshotExecutor
from forkserver.target import Target

# input byte -> (the piece FORKSERVER_BREAK_RESTORE names, words the verifier's message has)
PIECES = {
    b"C": ("process", "working directory"),
    b"U": ("process", "umask"),
    b"R": ("process", "resource limit"),
    b"N": ("process", "process name"),
    b"P": ("process", "prctl setting"),
    b"S": ("signals", "handler of signal 10"),
    b"A": ("signals", "signal stack"),
    b"M": ("mask", "signal mask"),
    b"T": ("timers", "interval timer 0"),
}


@pytest.fixture(scope="module")
def state_changer(tmp_path_factory):
    path = build([TEST_HARNESS_DIR / "state_changer.c"], tmp_path_factory.mktemp("state") / "state_changer")
    t = Target.from_command([str(path)])
    yield t
    t.cleanup()


def key(r):
    return (r.outcome.value, r.signal, r.exit_code, r.map_hash)


def test_each_change_is_seen_by_the_next_input_without_a_restore(state_changer):
    """The harness observes every piece: fork mode always starts clean (exit 0)."""
    with ForkExecutor(state_changer, 2000, cpu=0) as fx:
        for change in PIECES:
            assert fx.run(change).exit_code == 0
            assert fx.run(b"-").exit_code == 0, change


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_every_piece_comes_back_and_verifies(state_changer, backend):
    schedule = [d for change in PIECES for d in (change, b"-")] * 3
    with ForkExecutor(state_changer, 2000, cpu=0) as fx:
        want = [key(fx.run(d)) for d in schedule]
    with SnapshotExecutor(state_changer, 2000, cpu=0, backend=backend, verify=True) as sx:
        got = [sx.run(d) for d in schedule]
    errors = [(d, r.detail) for d, r in zip(schedule, got) if r.outcome.value == "error"]
    assert not errors, errors
    assert [key(r) for r in got] == want
    assert sx.runners_started == 1, "nothing here needs a fresh runner"


@pytest.mark.parametrize("change", list(PIECES), ids=[c.decode() for c in PIECES])
def test_verify_names_a_piece_the_restore_leaves_out(state_changer, change):
    piece, words = PIECES[change]
    broken = {"FORKSERVER_BREAK_RESTORE": piece}
    with SnapshotExecutor(state_changer, 2000, cpu=0, backend=BACKENDS[0], verify=True, extra_env=broken) as sx:
        r = sx.run(change)
    assert r.outcome.value == "error", f"a restore without {piece} passed verification"
    assert words in r.detail, r.detail
    # and without verify, the next input sees the piece still changed
    with SnapshotExecutor(state_changer, 2000, cpu=0, backend=BACKENDS[0], extra_env=broken) as sx:
        assert sx.run(change).exit_code == 0
        assert sx.run(b"-").exit_code != 0, f"the harness does not see {change!r} leak"


def test_timeouts_never_put_the_runner_protocol_out_of_step(tmp_path):
    """100,000 inputs at -t 1: a timeout may kill a runner before it reads its run
    command; the command left in the pipe must not reach the next runner's server."""
    spin = build([TEST_HARNESS_DIR / "spin.c"], tmp_path / "spin")
    report = isolated_python(f"""
        import collections, json, random
        from forkserver.executors import SnapshotExecutor
        from forkserver.target import Target
        t = Target.from_command([{str(spin)!r}])
        rng = random.Random(7)
        # mostly instant inputs, some close to the timeout on either side, some well past it
        inputs = [b"0"] * 47 + [b"800", b"1000", b"3000"]
        outcomes = collections.Counter()
        with SnapshotExecutor(t, 1, cpu=0) as sx:
            for _ in range(100_000):
                outcomes[sx.run(rng.choice(inputs)).outcome.value] += 1
            runners = sx.runners_started
        t.cleanup()
        print(json.dumps({{"outcomes": outcomes, "runners": runners}}))
    """, timeout=600)
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == 100_000
    assert set(outcomes) <= {"ok", "timeout"}, outcomes
    assert outcomes["timeout"] >= 1000, f"too few timeouts to exercise the protocol: {outcomes}"
    # a runner killed just as its input finished counts the input as done
    assert report["runners"] >= outcomes["timeout"] + 1


def test_a_run_command_left_for_a_dead_runner_never_reaches_the_server(tmp_path):
    """The race above, made certain: the runner dies first, then a run command is sent
    for it. The server must leave that command alone and the next runner start cleanly."""
    import os
    import signal

    from conftest import HARNESS_DIR

    with Target.from_command([str(HARNESS_DIR / "maze.c")]) as t, SnapshotExecutor(t, 2000, cpu=0) as sx:
        assert sx.run(b"MAZE!").outcome.value == "ok"
        os.kill(sx.runner_pid, signal.SIGKILL)  # dies while idle: the next run command finds no reader
        # the input it was sent did not run in it: a new runner runs it, with its own result
        results = [sx.run(data) for data in (b"FUZZ", b"MAZE!", b"FUN", b"MAZE!EXIT") * 3]
        assert [(r.outcome.value, r.signal) for r in results] == [("crash", signal.SIGABRT), ("ok", None),
                                                                  ("ok", None), ("ok", None)] * 3
        assert len({r.map_hash for r in results[1:4]}) == 3, "each input keeps its own coverage"
        assert [r.map_hash for r in results[1:4]] == [r.map_hash for r in results[5:8]]
        assert sx.runners_started == 5, "one for the start, one after the kill, one after each crash but the last"


def test_a_timeout_below_one_ms_is_a_usage_error():
    line = one_error_line(cli("run", "-t", "0", "-i", "corpora/maze", "--", "harnesses/maze.c"))
    assert "at least 1 ms" in line

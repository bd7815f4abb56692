"""The orchestrator as a long campaign needs it: nothing outlives it however it dies,
its memory stays flat, every bad value is one clear line, and a mode is what it says."""
import json
import os
import pty
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import CORPORA, HARNESS_DIR, REPO, TEST_HARNESS_DIR, cli, one_error_line
from forkserver.build import build
from forkserver.executors import SnapshotExecutor, make_executor
from forkserver.target import Target


def shm_ids_created_by(pid: int) -> list[int]:
    """SysV segments whose creator was pid (from /proc/sysvipc/shm)."""
    ids = []
    with open("/proc/sysvipc/shm") as f:
        header = f.readline().split()
        for line in f:
            row = dict(zip(header, line.split()))
            if int(row["cpid"]) == pid:
                ids.append(int(row["shmid"]))
    return ids


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pred, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.fixture(scope="module")
def maze(tmp_path_factory):
    return build([HARNESS_DIR / "maze.c"], tmp_path_factory.mktemp("maze") / "maze")


# ---- nothing outlives the orchestrator ----

@pytest.mark.parametrize("mode", ["fork", "snapshot"])
def test_sigkill_of_the_orchestrator_leaves_nothing_behind(maze, mode):
    code = textwrap.dedent(f"""
        import sys
        from forkserver.executors import make_executor
        from forkserver.target import Target
        t = Target.from_command([{str(maze)!r}])
        ex = make_executor({mode!r}, t, 1000, cpu=0)
        ex.start()
        ex.run(b"hello")
        runner = getattr(ex, "runner_pid", 0)
        print(ex.session.proc.pid, runner, t.workdir, flush=True)
        while True:
            ex.run(b"hello")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        server, runner, workdir = proc.stdout.readline().split()
        assert shm_ids_created_by(proc.pid), "the orchestrator made no segment?"
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = Path(workdir).parent
    assert run_dir.name == f"forkserver-{proc.pid}"
    assert wait_until(lambda: not run_dir.exists()), f"{run_dir} outlived its orchestrator"
    assert wait_until(lambda: not shm_ids_created_by(proc.pid)), "shared memory outlived its orchestrator"
    for pid in (int(server), int(runner)):
        if pid:
            assert wait_until(lambda: not alive(pid)), f"target process {pid} outlived its orchestrator"


def test_an_error_path_leaves_no_temp_directory(tmp_path):
    env = {"TMPDIR": str(tmp_path)}
    one_error_line(cli("run", "-i", tmp_path / "missing", "--", "harnesses/maze.c", env=env))
    one_error_line(cli("run", "-i", CORPORA / "maze", "--", TEST_HARNESS_DIR / "init_abort.c", env=env))
    assert list(tmp_path.iterdir()) == []


def test_stale_run_directories_are_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"forkserver-{dead.pid}"
    (stale / "target-x").mkdir(parents=True)
    live = tmp_path / f"forkserver-{os.getpid()}-not-a-run-dir"
    live.mkdir()
    out = cli("run", "-i", CORPORA / "maze", "--", "harnesses/maze.c", env={"TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert not stale.exists() and live.exists()


# ---- flat memory ----

def _max_rss_mb_of(args: list[str], env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code = ("import resource, sys, subprocess\n"
            f"p = subprocess.run({[sys.executable, '-m', 'forkserver', *map(str, args)]!r}, stdout=subprocess.DEVNULL,"
            " stderr=subprocess.PIPE, text=True)\n"
            "assert p.returncode == 0, p.stderr\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                         cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stderr
    del before
    return int(out.stdout.split()[-1]) / 1024  # the orchestrator's peak, as its parent saw it


@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc is not installed (apt-get install gcc)")
def test_orchestrator_memory_stays_flat_over_a_million_inputs(tmp_path):
    """A gcc (trace-pc) build has a 64 KiB map: a copy kept per result grew the
    orchestrator by 64 KiB an input. 990,000 inputs more than the small run, within
    20 MB: anything kept per input larger than ~21 bytes fails."""
    leaky = build([HARNESS_DIR / "leaky.c"], tmp_path / "leaky", cc="gcc")
    seed = tmp_path / "seed"
    seed.write_bytes(b"hello")
    small = _max_rss_mb_of(["run", "--mode", "snapshot", "--batch", "256", "--repeat", "10000", "--json", "-i", seed,
                            "--", leaky], {})
    big = _max_rss_mb_of(["run", "--mode", "snapshot", "--batch", "256", "--repeat", "1000000", "--json", "-i", seed,
                          "--", leaky], {})
    single = _max_rss_mb_of(["run", "--mode", "snapshot", "--repeat", "30000", "--json", "-i", seed, "--", leaky], {})
    assert big - small < 20, f"RSS {small:.0f} MB after 10,000 inputs, {big:.0f} MB after 1,000,000"
    assert single - small < 20, f"RSS {small:.0f} MB after 10,000 inputs, {single:.0f} MB after 30,000 single runs"


# ---- every bad value: one line, non-zero, no traceback, nothing left behind ----

def _fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def _arm_elf(tmp_path: Path) -> Path:
    p = tmp_path / "arm"
    p.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little") + bytes(44))
    p.chmod(0o755)
    return p


def _a_file(tmp_path: Path) -> Path:
    p = tmp_path / "plain"
    p.write_text("x")
    return p


MAZE_RUN = ["-i", CORPORA / "maze", "--"]
BAD = {
    "negative timeout": (lambda d: (["run", "-t", "-5", "-i", CORPORA / "maze", "--", "harnesses/maze.c"], {}),
                         "at least 1 ms"),
    "zero timeout": (lambda d: (["run", "--mode", "fork", "-t", "0", "-i", CORPORA / "maze", "--", "harnesses/maze.c"],
                                {}), "at least 1 ms"),
    "bench with a zero timeout": (lambda d: (["bench", "-t", "0", "--modes", "fork"], {}), "at least 1 ms"),
    "zero batch": (lambda d: (["run", "--batch", "0", *MAZE_RUN, "harnesses/maze.c"], {}), "--batch"),
    "negative batch": (lambda d: (["run", "--batch", "-3", *MAZE_RUN, "harnesses/maze.c"], {}), "--batch"),
    "cpu out of range": (lambda d: (["run", "--cpu", "99", *MAZE_RUN, "harnesses/maze.c"], {}), "may run on CPUs"),
    "negative cpu": (lambda d: (["run", "--cpu", "-1", *MAZE_RUN, "harnesses/maze.c"], {}), "may run on CPUs"),
    "backend without snapshots": (lambda d: (["run", "--mode", "fork", "--backend", "foo", *MAZE_RUN,
                                              "harnesses/maze.c"], {}), "needs --mode snapshot"),
    "init timeout not a number": (lambda d: (["run", *MAZE_RUN, "harnesses/maze.c"], {"FORKSERVER_INIT_TIMEOUT_MS": "abc"}),
                                  "FORKSERVER_INIT_TIMEOUT_MS"),
    "AFL++'s compiler for our runtime": (lambda d: (["build", HARNESS_DIR / "maze.c", "-o", d / "m"],
                                                   {"FORKSERVER_CC": "afl-clang-fast"}), "clash with ours"),
    "cache dir unusable": (lambda d: (["run", *MAZE_RUN, HARNESS_DIR / "maze.c"], {"FORKSERVER_CACHE_DIR": "/proc/x"}),
                           "FORKSERVER_CACHE_DIR"),
    "build output under a file": (lambda d: (["build", HARNESS_DIR / "maze.c", "-o", _a_file(d) / "x"], {}),
                                  "output directory"),
    "an ARM binary": (lambda d: (["run", *MAZE_RUN, _arm_elf(d)], {}), "AArch64, not x86-64"),
    "a FIFO as input": (lambda d: (["run", "-i", _fifo(d), "--", "harnesses/maze.c"], {}), "a FIFO"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_values_are_one_clear_line(case, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    make, words = BAD[case]
    args, env = make(scratch)
    line = one_error_line(cli(*args, env={"TMPDIR": str(tmpdir), **env}, timeout=120))
    assert words in line, line
    assert list(tmpdir.iterdir()) == [], f"left in $TMPDIR: {list(tmpdir.iterdir())}"


def test_a_fifo_inside_an_input_directory_is_skipped_with_a_note(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "seed").write_bytes(b"hello")
    os.mkfifo(d / "pipe")
    out = cli("run", "--json", "-i", d, "--", "harnesses/maze.c", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "note: skipping" in out.stderr and "a FIFO" in out.stderr
    assert '"execs": 1' in out.stdout


# ---- words and modes ----

@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc is not installed (apt-get install gcc)")
def test_inspect_names_a_gcc_build_trace_pc(tmp_path):
    gcc_build = build([HARNESS_DIR / "maze.c"], tmp_path / "maze-gcc", cc="gcc")
    clang_build = build([HARNESS_DIR / "maze.c"], tmp_path / "maze-clang", cc="clang")
    assert '"coverage": "trace-pc"' in cli("inspect", "--json", gcc_build).stdout
    assert '"coverage": "trace-pc-guard"' in cli("inspect", "--json", clang_build).stdout


def test_fork_mode_on_an_afl_persistent_build_forks_per_input(tmp_path):
    afl_cc = shutil.which("afl-clang-fast")
    assert afl_cc, "afl-clang-fast is missing: scripts/setup.sh installs afl++"
    binary = tmp_path / "pids"
    subprocess.run([afl_cc, "-O1", str(TEST_HARNESS_DIR / "afl_persistent_pids.c"), "-o", str(binary)], check=True,
                   capture_output=True)
    pids = {}
    for mode in ("fork", "persistent"):
        log = tmp_path / f"{mode}.log"
        with Target.from_command([str(binary)], env={"PID_LOG": str(log)}) as t:
            with make_executor(mode, t, 2000, cpu=0) as ex:
                for _ in range(20):
                    assert ex.run(b"x").outcome.value == "ok"
        pids[mode] = {line.split()[0] for line in log.read_text().splitlines()}
    assert len(pids["fork"]) == 20, "fork mode must start one process per input"
    assert len(pids["persistent"]) == 1


@pytest.fixture(scope="module")
def spawn_probe(tmp_path_factory):
    return build([TEST_HARNESS_DIR / "spawn_probe.c"], tmp_path_factory.mktemp("spawn_probe") / "spawn_probe")


@pytest.mark.parametrize("mode", ["exec", "fork", "snapshot"])
def test_the_target_gets_no_descriptor_the_orchestrator_inherited(spawn_probe, mode, tmp_path):
    # as a Ray worker or a shell's `3>file` passes one: the target must not write it, and
    # a snapshot runner must not seek it back at every input
    stray = tmp_path / "inherited.log"
    fd = os.open(stray, os.O_WRONLY | os.O_CREAT, 0o600)
    os.dup2(fd, 77, inheritable=True)
    os.close(fd)
    try:
        with Target.from_command([str(spawn_probe)]) as t:
            with make_executor(mode, t, 2000, cpu=0) as ex:
                assert ex.run(b"2").outcome.value == "crash", "the probe must see stderr"
                assert ex.run(b"77").outcome.value == "ok", "descriptor 77 reached the target"
    finally:
        os.close(77)


def _spawn_probe_state(binary: Path, mode: str, cwd: Path) -> dict[str, str]:
    """Runs in a child process, whose signal state and core limit the test sets first."""
    code = textwrap.dedent(f"""
        import json, resource, signal, sys
        from forkserver.executors import make_executor
        from forkserver.target import Target
        signal.signal(signal.SIGINT, signal.SIG_IGN)       # as a shell's background job
        signal.signal(signal.SIGHUP, signal.SIG_IGN)       # as under nohup
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1, signal.SIGTERM}})  # as in a Ray worker
        # Python itself ignores SIGPIPE and SIGXFSZ
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))  # ulimit -c unlimited, where allowed
        out = {{}}
        with Target.from_command([{str(binary)!r}]) as t:
            with make_executor({mode!r}, t, 2000, cpu=0) as ex:
                for name in ("SIGINT", "SIGHUP", "SIGPIPE", "SIGXFSZ", "SIGUSR1", "SIGTERM"):
                    out[name] = ex.run(b"s%d" % getattr(signal, name)).outcome.value
                out["core dumps"] = ex.run(b"c").outcome.value
                out["a terminal"] = ex.run(b"t").outcome.value
                out["probe"] = ex.run(b"s9").outcome.value  # SIGKILL: never ignored nor blocked
        assert open("/dev/tty", "wb"), "the test itself must run on a terminal"
        print(json.dumps(out))
    """)
    # on a terminal of its own, as from an interactive shell; in a scratch directory: a
    # target that may dump core dumps it into its cwd
    pid, terminal = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execv(sys.executable, [sys.executable, "-c", code])
        finally:
            os._exit(127)
    output = b""
    deadline = time.monotonic() + 120
    while (left := deadline - time.monotonic()) > 0 and select.select([terminal], [], [], left)[0]:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not chunk:
            break
        output += chunk
    else:  # still running at the deadline
        os.kill(pid, signal.SIGKILL)
    os.close(terminal)
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    return json.loads(text.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["exec", "fork", "snapshot"])
def test_the_target_starts_with_default_signals_no_core_dumps_and_no_terminal(spawn_probe, mode, tmp_path):
    # what a program gets from afl-fuzz: SIGPIPE kills it, a crash dumps no core (a dump
    # through systemd-coredump takes longer than thousands of inputs), and it cannot read
    # or scribble on the terminal of the live panel, whatever the orchestrator was given
    seen = _spawn_probe_state(spawn_probe, mode, tmp_path)
    assert seen.pop("probe") == "ok"
    assert seen == {name: "ok" for name in seen}, f"ignored or blocked in the target: {seen}"


def test_a_crashing_input_of_a_batch_reports_its_own_time(tmp_path):
    spin = build([TEST_HARNESS_DIR / "spin.c"], tmp_path / "spin")
    with Target.from_command([str(spin)]) as t:
        with SnapshotExecutor(t, 30, cpu=0) as sx:
            results = sx.run_batch([b"20000"] * 5 + [b"100000"])  # five 20 ms inputs, then one that times out
    assert [r.outcome.value for r in results] == ["ok"] * 5 + ["timeout"]
    assert 25_000 <= results[-1].exec_us < 60_000, f"the timed-out input took {results[-1].exec_us} us, " \
                                                   "not the batch's 130 ms"

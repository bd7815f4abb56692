"""Shared fixtures and helpers for the forkserver test suite.

Every harness is built once per session (forkserver.build.build into a session temp
directory). Heavy loops use the Python API; CLI behaviour is tested through a real
`python -m forkserver` subprocess.

Snapshot-mode runs that can time out, and the long replays, run in a child process with
its own session (see `isolated`, `isolated_python`, `cli`): the orchestrator kills the
runner on a timeout with kill(runner_pid, SIGKILL), and if it ever lost track of the
runner's pid (see test_snapshot.py::
test_timeout_after_a_slow_runner_start_kills_only_the_runner) that would be
kill(0, ...), which would take pytest down with it.
"""
import json
import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lief
import pytest

from forkserver.build import build
from forkserver.doctor import BACKEND_IDS, available_backends, probe_backend
from forkserver.inputs import read_inputs

REPO = Path(__file__).resolve().parents[1]
HARNESS_DIR = REPO / "harnesses"
CORPORA = REPO / "corpora"
TEST_HARNESS_DIR = Path(__file__).resolve().parent / "harnesses"

HARNESSES = ["maze", "crash", "hang", "big_heap", "leaky", "ini_parser", "thread_after_snapshot", "kernel_write",
             "magic_gates"]
TEST_HARNESSES = ["init_abort", "init_segv", "init_counter", "counted", "restore_probe", "spin", "two_doors"]

# Backends that really work on this machine (probed), in doctor's order.
BACKENDS = available_backends()
SOFT_DIRTY_OK, SOFT_DIRTY_REASON = probe_backend("soft-dirty")


def _backend_param(name: str):
    ok, reason = probe_backend(name)
    if ok:
        return pytest.param(name, id=name)
    return pytest.param(name, id=name, marks=pytest.mark.skip(reason=f"backend {name} unavailable here "
                                                                      f"(forkserver doctor): {reason}"))


# Every backend, for parametrize: the ones that do not work here are skipped with
# doctor's reason, never left out silently.
BACKEND_PARAMS = [_backend_param(name) for name in BACKEND_IDS]

# Environment for harnesses that need one. 64 MiB: a heap region large enough that
# pagemap-scan traps its writes page by page instead of walking it (regions of 32 MiB
# or more).
HARNESS_ENV = {"big_heap": {"BIG_HEAP_MB": "64"}}

# The inputs every harness gets besides its seeds: they only mean something to the
# harness whose top comment names them, the others must simply run them.
COMMON_BAD = [b"FUZZ", b"SEGV", b"ABRT", b"EXIT3", b"_EXIT4"]
EXTRA_BAD = {
    "crash": [b"FPE"],
    "hang": [b"HANG"],
    "ini_parser": [b"[crash]\nboom=1\n"],
}


def seeds(name: str) -> list[bytes]:
    return [data for _, data in read_inputs(CORPORA / name)]


def inputs_for(name: str) -> list[bytes]:
    """Seeds plus the bad inputs for one harness (HANG only for hang)."""
    return seeds(name) + COMMON_BAD + EXTRA_BAD.get(name, [])


def cli_cmd() -> list[str]:
    return [sys.executable, "-m", "forkserver"]


def cli(*args, env: dict | None = None, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    """Runs `forkserver ARGS...` in its own session (own process group)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(cli_cmd() + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, start_new_session=True, cwd=cwd or REPO)


def cli_json(*args, env: dict | None = None, timeout: float = 300) -> dict:
    proc = cli(*args, env=env, timeout=timeout)
    assert proc.returncode == 0, f"forkserver {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


def isolated_python(code: str, timeout: float = 300, env: dict | None = None) -> dict:
    """Runs a Python snippet in a child in its own session; the snippet prints one JSON
    object as its last stdout line, which is returned."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, start_new_session=True)
    assert proc.returncode == 0, (f"isolated run failed with status {proc.returncode} "
                                  f"(negative: killed by that signal)\nstdout: {proc.stdout[-2000:]}\n"
                                  f"stderr: {proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def isolated(function: str, timeout: float = 600, **kwargs) -> dict:
    """Runs tests/equivalence.py FUNCTION in a child with its own session."""
    from equivalence import encode

    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "equivalence.py"), function,
                           json.dumps(encode(kwargs))], capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    assert proc.returncode == 0, (f"{function} failed with status {proc.returncode} (negative: killed by that "
                                  f"signal)\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """Asserts the CLI failed cleanly: non-zero exit, exactly one stderr line that starts
    with `forkserver: error:`, and no Python traceback. Returns that line."""
    assert proc.returncode != 0, f"expected failure, got 0; stdout={proc.stdout!r} stderr={proc.stderr!r}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {proc.stderr!r}"
    assert lines[0].startswith("forkserver: error: "), lines[0]
    return lines[0]


def result_key(r) -> tuple:
    """What must agree between modes for one input."""
    return (r.outcome.value, r.signal, r.exit_code, r.map_hash)


def json_key(row: dict) -> tuple:
    return (row["outcome"], row["signal"], row["exit_code"], row["map_hash"])


@pytest.fixture(scope="session")
def bins(tmp_path_factory) -> dict[str, Path]:
    """Every harness (and the test-only ones), built once, in parallel."""
    out = tmp_path_factory.mktemp("builds")
    jobs = {name: (HARNESS_DIR / f"{name}.c") for name in HARNESSES}
    jobs.update({name: (TEST_HARNESS_DIR / f"{name}.c") for name in TEST_HARNESSES})
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(build, [src], out / name) for name, src in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="session")
def input_dirs(tmp_path_factory) -> dict[str, Path]:
    """Per harness: a directory with its seeds plus its bad inputs (for the CLI)."""
    base = tmp_path_factory.mktemp("inputs")
    dirs = {}
    for name in HARNESSES:
        d = base / name
        d.mkdir()
        for fname, data in read_inputs(CORPORA / name):
            (d / fname).write_bytes(data)
        for data in COMMON_BAD + EXTRA_BAD.get(name, []):
            (d / ("bad_" + data.decode().split("\n")[0].strip("[]"))).write_bytes(data)
        dirs[name] = d
    return dirs


# ---- reading binaries and speaking to fork servers by hand ----

FORKSRV_FD = 198


def guard_count(binary: Path) -> int:
    section = lief.parse(str(binary)).get_section("__sancov_guards")
    assert section is not None and section.size % 4 == 0
    return section.size // 4


def tick_map_index(binary: Path) -> int:
    elf = lief.parse(str(binary))
    guards = elf.get_section("__sancov_guards")
    tick = elf.get_symbol("counted_tick")
    code = bytes(elf.get_content_from_virtual_address(tick.value, 32))
    at = code.find(b"\x48\x8d\x3d")  # lea rdi, [rip + disp32]: the guard's address
    assert at >= 0, f"no guard load in counted_tick: {code.hex()}"
    target = tick.value + at + 7 + int.from_bytes(code[at + 3:at + 7], "little", signed=True)
    assert guards.virtual_address <= target < guards.virtual_address + guards.size
    return (target - guards.virtual_address) // 4 + 1


class RawForkServer:
    """The target started by hand with pipes on fds 198 (control) and 199 (status)."""

    def __init__(self, binary: Path, env: dict[str, str], stdin: Path | int | None = None):
        """stdin: a file to open, or an open fd to share (as afl-fuzz shares its input file's)."""
        ctl_r, self.ctl_w = os.pipe()
        self.st_r, st_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, ctl_r, FORKSRV_FD), (os.POSIX_SPAWN_DUP2, st_w, FORKSRV_FD + 1)]
        if isinstance(stdin, int):
            actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
        elif stdin is not None:
            actions.append((os.POSIX_SPAWN_OPEN, 0, str(stdin), os.O_RDWR, 0))
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.pid = os.posix_spawn(str(binary), [str(binary)], {**base, **env}, file_actions=actions, setsid=True)
        os.close(ctl_r)
        os.close(st_w)

    def read(self, timeout: float = 10) -> int:
        ready, _, _ = select.select([self.st_r], [], [], timeout)
        assert ready, "the fork server said nothing"
        data = os.read(self.st_r, 4)
        assert len(data) == 4, f"short read from the fork server: {data!r}"
        return struct.unpack("<I", data)[0]

    def write(self, value: int) -> None:
        os.write(self.ctl_w, struct.pack("<I", value))

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # reaped by the test
        os.close(self.ctl_w)
        os.close(self.st_r)

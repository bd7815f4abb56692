"""Executors run one input in a target and say what happened (ExitKind-style Outcome)."""
import contextlib
import enum
import os
import resource
import select
import signal
from dataclasses import dataclass, field

from ..config import SETTINGS
from ..errors import InputError, TargetStartError
from ..native import lib
from ..novelty import Novelty, VirginMap
from ..sanitizers import report_summary
from ..observers import CoverageMap, summarize
from ..target import Target

MAX_INPUT = 1 << 20


class Outcome(enum.Enum):
    OK = "ok"
    CRASH = "crash"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass
class ExecResult:
    """What one run of one input did. The map itself is kept only when asked for
    (run(..., keep_map=True)); its edge count and hash always are."""

    outcome: Outcome
    signal: int | None = None
    exit_code: int | None = None
    exec_us: float = 0.0
    restore_us: float | None = None
    dirty_pages: int | None = None
    coverage: CoverageMap | None = None
    runner_hash: int | None = None  # map hash computed by the runtime (batched runs)
    detail: str = ""
    thread_started: bool = False    # snapshot mode refused a thread started by this input
    edges: int | None = None
    map_hash: int | None = None
    sanitizer: str = ""             # a sanitizer's one-line summary, for a crash it reported
    novelty: Novelty | None = None  # what an ok run added to the executor's virgin map, when it keeps one

    def __post_init__(self):
        if self.coverage is not None and (self.edges is None or self.map_hash is None):
            self.edges, self.map_hash = summarize(self.coverage.counts)
        if self.map_hash is None:
            self.map_hash = self.runner_hash

    def as_json(self, input_name: str) -> dict:
        d = {
            "input": input_name,
            "outcome": self.outcome.value,
            "signal": self.signal,
            "exit_code": self.exit_code,
            "edges": self.edges,
            "map_hash": f"{self.map_hash:08x}" if self.map_hash is not None else None,
            "exec_us": round(self.exec_us, 2),
            "dirty_pages": self.dirty_pages,
        }
        if self.restore_us is not None:
            d["restore_us"] = round(self.restore_us, 2)
        if self.detail:
            d["detail"] = self.detail
        if self.sanitizer:
            d["sanitizer"] = self.sanitizer
        if self.novelty is not None:
            d["novelty"] = self.novelty.name.lower()
        return d


def outcome_from_status(status: int, timed_out: bool) -> tuple[Outcome, int | None, int | None]:
    """Turns a wait(2) status into (outcome, signal, exit_code). A timeout wins."""
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    if timed_out:
        return Outcome.TIMEOUT, sig, code
    if sig is not None:
        return Outcome.CRASH, sig, None
    return Outcome.OK, None, code


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"was killed by signal {sig} ({signal.Signals(sig).name})"
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"stopped (status {status:#x})"


def pin_to_cpu(cpu: int | None) -> None:
    """Pins this process (and the targets it starts afterwards): see forkserver.cpu."""
    from ..cpu import pin

    pin(cpu)


# Every signal a target may have at its default, as from an interactive shell and from
# afl-fuzz: Python ignores SIGPIPE and SIGXFSZ, a shell's background job SIGINT and
# SIGQUIT, nohup SIGHUP, and a Ray worker blocks some. (glibc's posix_spawn leaves its two
# internal signals, 32 and 33, ignored; glibc installs their handlers when it uses them.)
RESET_SIGNALS = frozenset(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


def inherited_fds() -> list[int]:
    """This process's descriptors above stderr that a child would inherit (not
    close-on-exec): ours are not, but a parent's can be (Ray gives its workers their log
    files; a shell passes `3>file`)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return sorted(fds)


@contextlib.contextmanager
def no_core_dumps():
    """RLIMIT_CORE 0 for what is spawned meanwhile, as afl-fuzz gives its targets: a dump
    through systemd-coredump or apport takes longer than thousands of inputs. posix_spawn
    has no rlimit attribute; it returns once the child has exec'd (CLONE_VFORK), so our
    own limit is lowered only for that long."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if soft == 0:
        yield
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


class Process:
    """A started target; optionally with the fork-server pipes on fds 198/199. It gets
    no other descriptor of ours (a target that inherited, say, a log file would have it
    written by a crash, and a snapshot runner would seek it back at every input), none
    of our signal state (default dispositions, an empty mask), and no core dumps."""

    def __init__(self, argv: list[str], env: dict[str, str], stdin_fd: int | None,
                 stderr_path: str, fork_server: bool):
        actions = []
        devnull = os.open(os.devnull, os.O_RDWR)
        # appended to, whatever offset a restore puts back: every process's output stays
        err_fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        to_close = [devnull, err_fd]
        actions.append((os.POSIX_SPAWN_DUP2, stdin_fd if stdin_fd is not None else devnull, 0))
        actions.append((os.POSIX_SPAWN_DUP2, err_fd if SETTINGS.debug else devnull, 1))
        actions.append((os.POSIX_SPAWN_DUP2, err_fd, 2))
        self.ctl_w = self.st_r = None
        if fork_server:
            ctl_r, self.ctl_w = os.pipe()
            self.st_r, st_w = os.pipe()
            actions += [(os.POSIX_SPAWN_DUP2, ctl_r, lib.FS_FORKSRV_CTL_FD),
                        (os.POSIX_SPAWN_DUP2, st_w, lib.FS_FORKSRV_ST_FD)]
            to_close += [ctl_r, st_w]
        kept = {target for _, _, target in actions}
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds() if fd not in kept]
        try:
            with no_core_dumps():
                # a session of its own, as under afl-fuzz: its own process group (Ctrl-C and
                # our killpg), and no controlling terminal to read, write or stop on
                self.pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True,
                                          setsigdef=RESET_SIGNALS, setsigmask=())
        except OSError as exc:
            raise TargetStartError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        finally:
            for fd in to_close:
                os.close(fd)
        self.pidfd = os.pidfd_open(self.pid)
        self.stderr_path = stderr_path
        self.status: int | None = None

    def wait(self, timeout_ms: int | None) -> int | None:
        """Wait status, or None when the process still runs after timeout_ms."""
        if self.status is not None:
            return self.status
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        if not poller.poll(timeout_ms if timeout_ms is not None else -1):
            return None
        _, self.status = os.waitpid(self.pid, 0)
        return self.status

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                text = f.read()[-4000:]
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        if self.status is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(None)
        for fd in (self.ctl_w, self.st_r, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.ctl_w = self.st_r = self.pidfd = None


class StderrLog:
    """The target's stderr file, shared by its fork server and every input's process:
    what was written since the last look, for a crash's sanitizer report. Kept under
    LIMIT bytes, so that a long run's chatter costs no disk."""

    LIMIT = 1 << 20

    def __init__(self, path: str):
        self.path = path
        self.seen = 0

    def new_text(self) -> str:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = self.seen if self.seen <= size else 0
                f.seek(max(start, size - self.LIMIT))
                data = f.read()
        except OSError:
            return ""
        self.seen = size
        if size > self.LIMIT:
            os.truncate(self.path, 0)  # writers append, so they carry on at the new end
            self.seen = 0
        return data.decode(errors="replace")

    def trim(self) -> None:
        """Empties the file once it holds more than LIMIT bytes (between inputs): a
        target that writes at every input must not fill the disk, or the memory of a
        tmpfs, over a long run. Writers append, so they carry on at the new end."""
        try:
            if os.stat(self.path).st_size > self.LIMIT:
                os.truncate(self.path, 0)
                self.seen = 0
        except OSError:
            pass

    def skip(self) -> None:
        """Forgets what is there: a new process starts."""
        try:
            self.seen = os.stat(self.path).st_size
        except OSError:
            self.seen = 0


def add_sanitizer_report(result: ExecResult, log: StderrLog) -> ExecResult:
    """A crash carries the summary of the sanitizer report it left on stderr, if any."""
    if result.outcome is Outcome.CRASH:
        result.sanitizer = report_summary(log.new_text())
    return result


@dataclass
class LoopResult:
    """What a C loop (run_c_loop) did: how many runs, how long, and their outcomes."""

    runs: int
    wall_ns: int
    outcomes: dict[str, int]          # ok / crash / timeout -> count
    exit_codes: dict[int, int]
    last_batch: list[ExecResult] = field(default_factory=list)  # snapshot: the last batch's timings


def loop_result(tally, wall_ns: int) -> LoopResult:
    """A C loop's tally (struct fs_loop_tally) as counts."""
    exits = {code: int(tally.exits[code]) for code in range(256) if tally.exits[code]}
    crashes = sum(int(tally.signals[s]) for s in range(65))
    outcomes = {"ok": sum(exits.values()), "crash": crashes, "timeout": int(tally.timeouts)}
    return LoopResult(sum(outcomes.values()), wall_ns, {k: v for k, v in outcomes.items() if v}, exits)


@dataclass
class InputFile:
    """The file a target reads its input from: @@ names it, else it is the target's stdin."""

    path: str
    fd: int = field(init=False)

    def __post_init__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def write(self, data: bytes) -> None:
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))
        os.lseek(self.fd, 0, os.SEEK_SET)

    def close(self) -> None:
        os.close(self.fd)


class Executor:
    """Runs inputs in a target. Subclasses: ExecExecutor, ForkExecutor, SnapshotExecutor."""

    mode = "?"
    backend: str | None = None

    def __init__(self, target: Target, timeout_ms: int = 1000, cpu: int | None = None):
        self.target = target
        self.timeout_ms = timeout_ms
        self.cpu = cpu
        self.virgin: VirginMap | None = None

    def use_virgin(self, virgin: VirginMap) -> None:
        """Classifies every ok run against virgin (before start()): each result then says
        what it added (ExecResult.novelty). Crashes and timeouts leave it alone, as in
        AFL, where they have virgin maps of their own."""
        self.virgin = virgin

    def set_timeout(self, timeout_ms: int) -> None:
        """The timeout of the runs from now on."""
        self.timeout_ms = timeout_ms

    def start(self) -> None:
        raise NotImplementedError

    def stderr_log(self) -> StderrLog | None:
        """The target's stderr file, where this executor keeps one."""
        session = getattr(self, "session", None)
        return getattr(self, "stderr", None) or getattr(session, "stderr", None)

    def trim_stderr(self) -> None:
        """Keeps the target's stderr file small over a long run (call between inputs)."""
        log = self.stderr_log()
        if log is not None:
            log.trim()

    def run(self, data: bytes, keep_map: bool = False) -> ExecResult:
        """Runs one input. keep_map: keep a copy of its coverage map in the result."""
        raise NotImplementedError

    def run_batch(self, inputs: list[bytes], collect_maps: bool | None = None,
                  keep_maps: bool = False) -> list[ExecResult]:
        """Runs inputs in order; the same call on every executor. Snapshot mode runs them
        in as few wake-ups as fit (see SnapshotExecutor.run_batch for collect_maps); the
        others one by one, always with their maps' summaries."""
        return [self.run(d, keep_map=keep_maps) for d in inputs]

    def map_result(self, result: ExecResult, keep_map: bool) -> ExecResult:
        """Adds the shared map's (self.map) edge count and hash, a copy if kept, and the
        novelty of an ok run not classified yet."""
        result.edges, result.map_hash = self.map.summary()
        if keep_map:
            result.coverage = self.map.snapshot()
        if self.virgin is not None and result.novelty is None and result.outcome is Outcome.OK:
            result.novelty = self.virgin.update(self.map.view)
        return result

    def close(self) -> None:
        pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def check_input_size(data: bytes) -> None:
    if len(data) > MAX_INPUT:
        raise InputError(f"input of {len(data)} bytes is larger than the {MAX_INPUT}-byte limit")

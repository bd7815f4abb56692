"""`forkserver fuzz -j N`: N worker processes on one machine, one campaign.

Each worker is a whole fuzzer (its own target, runner, queue and fuzzer_stats in
OUT/NAME), pinned to its own allowed CPU. They share finds through afl-fuzz's sync
layout (sync.py: the first worker is the main, the others secondaries) and crash
uniqueness through OUT/.crashes (shared_crashes.py), so afl-fuzz instances can join the
same directory. Workers report their figures to this process, which shows one panel
for all of them and restarts a worker that dies (it resumes its own directory)."""
import multiprocessing
import os
import queue as queue_module
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from .errors import ForkserverError, UsageError
from .monitor import Monitor, Status

MAX_RESTARTS = 5          # per worker: a target that kills its worker every time is an error
STOP_GRACE_S = 10.0       # a stopping worker's time to flush its figures


@dataclass
class WorkerSpec:
    """All a worker process needs (it is pickled into a fresh interpreter)."""

    index: int
    name: str
    main: bool
    cpu: int | None
    seed: int
    command: list[str]           # the built target binary and its arguments
    out: str
    mode: str
    backend: str
    timeout_ms: int
    hang_timeout_ms: int
    max_time: float | None
    max_runs: int | None
    batch: int
    exit_on_crash: bool
    tokens: list[bytes]
    seeds: list[tuple[str, bytes]]
    resume: bool
    cmplog: str | None = None    # the cmplog binary (or "0": the target is one)
    detect_leaks: bool = False
    repro_prefix: list[str] = field(default_factory=list)
    command_line: list[str] = field(default_factory=list)


def worker_names(jobs: int, main_name: str | None, secondary_name: str | None) -> list[tuple[str, bool]]:
    """(name, is main) per worker: `main`, `w1`, ... by default; -M NAME: NAME, NAME1, ...;
    -S NAME: NAME1 ... NAMEn, all secondaries (joining another fuzzer's main)."""
    if secondary_name:
        return [(f"{secondary_name}{k + 1}", False) for k in range(jobs)]
    base = main_name or "main"
    first = [(base, True)]
    prefix = main_name or "w"
    return first + [(f"{prefix}{k}", False) for k in range(1, jobs)]


class RemoteMonitor(Monitor):
    """A worker's monitor: its figures and events go to whoever runs the campaign, at
    most every `interval` seconds; an answer of True stops the worker."""

    def __init__(self, interval: float):
        super().__init__(interval=interval)

    def send(self, status: Status) -> bool:
        raise NotImplementedError

    def start(self, status: Status) -> None:
        self.send(status)

    def update(self, status: Status, force: bool = False) -> None:
        from .fuzzer import Stop

        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            if self.send(status):
                raise Stop("the campaign was stopped")

    def stop(self, status: Status, reason: str, crashes: list[tuple[str, str]]) -> None:
        self.send(status)


class _ForwardingMonitor(RemoteMonitor):
    """Through the driver's queue (the driver stops a worker with SIGTERM, not an answer)."""

    def __init__(self, channel, index: int):
        super().__init__(interval=0.25)
        self.channel, self.index = channel, index

    def send(self, status: Status) -> bool:
        self.channel.put(("status", self.index, status))
        return False

    def event(self, text: str) -> None:
        self.channel.put(("event", self.index, text))


def run_fuzzer(spec: WorkerSpec, target, out: Path, resume: bool, cpu: int | None, monitor: Monitor, sync,
               shared_crashes) -> dict:
    """A worker's campaign on its target, in out/NAME, to its end: its summary. With
    spec.cmplog, the comparison stage runs on that build (or on the target: "0")."""
    from .cli import _input_to_state_stage
    from .executors import make_executor
    from .fuzzer import FuzzOptions, Fuzzer
    from .outdir import OutputDir

    input_to_state = None
    if spec.cmplog:
        how = SimpleNamespace(cmplog=spec.cmplog, mode=spec.mode, backend=spec.backend, seed=spec.seed)
        input_to_state = _input_to_state_stage(how, spec.command, target, spec.timeout_ms, cpu)
    try:
        executor = make_executor(spec.mode, target, spec.timeout_ms, spec.backend, cpu)
        outdir = OutputDir.open(out, spec.name, resume=resume)
        options = FuzzOptions(
            seed=spec.seed, hang_timeout_ms=spec.hang_timeout_ms, max_time=spec.max_time, max_runs=spec.max_runs,
            exit_on_crash=spec.exit_on_crash, batch=spec.batch, tokens=spec.tokens, repro_prefix=spec.repro_prefix,
            target_command=spec.command, command_line=spec.command_line)
        fuzzer = Fuzzer(executor, outdir, options, monitor, input_to_state, sync=sync, shared_crashes=shared_crashes)
        fuzzer.run(None if resume else spec.seeds, resume=resume)
        return fuzzer.summary
    finally:
        if input_to_state is not None:
            input_to_state.close()


def crash_list(summary: dict) -> list[tuple[str, str]]:
    """(reproduce, what) of every crash in a campaign summary, for the monitor's last words."""
    return [(c["reproduce"], c.get("sanitizer") or (f"signal {c['signal']}" if c.get("signal") else ""))
            for c in summary["crashes"]]


def _worker_main(spec: WorkerSpec, channel) -> None:
    """One worker process: a campaign on its own CPU, reporting to the driver."""
    from .cpu import pin
    from .shared_crashes import SharedCrashes
    from .sync import SyncDir
    from .target import Target

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # the driver stops workers this way
    try:
        pin(spec.cpu)
        target = Target.from_command(spec.command)
        target.detect_leaks = spec.detect_leaks
        with target:
            out = Path(spec.out)
            summary = run_fuzzer(spec, target, out, spec.resume, spec.cpu, _ForwardingMonitor(channel, spec.index),
                                 SyncDir(out, spec.name, spec.main), SharedCrashes(out))
        channel.put(("done", spec.index, summary))
    except ForkserverError as exc:
        channel.put(("error", spec.index, str(exc), exc.exit_code))
    except KeyboardInterrupt:
        channel.put(("error", spec.index, "interrupted before the campaign started", 130))


@dataclass
class _Worker:
    spec: WorkerSpec
    process: multiprocessing.Process | None = None
    status: Status | None = None
    summary: dict | None = None
    restarts: int = 0


class ParallelCampaign:
    """The driver: starts the workers, shows their figures as one, restarts the dead."""

    def __init__(self, specs: list[WorkerSpec], monitor: Monitor):
        self.ctx = multiprocessing.get_context("spawn")  # fresh interpreters: the driver runs threads (rich)
        self.channel = self.ctx.Queue()
        self.workers = [_Worker(spec) for spec in specs]
        self.monitor = monitor
        self.started = time.time()
        self.stop_reason = ""
        self.error: tuple[str, int] | None = None
        self.stopping = False

    def run(self) -> dict:
        """Runs the campaign to its end; returns the summary (`fuzz -j N --json`)."""
        for w in self.workers:
            self._start(w)
        self.monitor.start(self.status())
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while any(w.summary is None for w in self.workers) and self.error is None:
                self._receive(timeout=0.25)
                self._reap()
                self.monitor.update(self.status())
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._stop_all()
        summary = self._summary()
        self.monitor.stop(self.status(), summary["stop_reason"], crash_list(summary))
        if self.error is not None:
            raise ForkserverError(self.error[0]) if self.error[1] != 2 else UsageError(self.error[0])
        return summary

    def _start(self, w: _Worker) -> None:
        w.process = self.ctx.Process(target=_worker_main, args=(w.spec, self.channel), name=w.spec.name, daemon=True)
        w.process.start()

    def _receive(self, timeout: float) -> None:
        try:
            msg = self.channel.get(timeout=timeout)
        except queue_module.Empty:
            return
        while True:
            self._handle(msg)
            try:
                msg = self.channel.get_nowait()
            except queue_module.Empty:
                return

    def _handle(self, msg: tuple) -> None:
        kind, index, *rest = msg
        w = self.workers[index]
        if kind == "status":
            w.status = rest[0]
        elif kind == "event":
            self.monitor.event(f"{w.spec.name}: {rest[0]}")
        elif kind == "done":
            w.summary = rest[0]
            if w.summary.get("stop_reason", "").startswith("a crash was found"):
                self.stop_reason = f"{w.spec.name}: {w.summary['stop_reason']}"
                self._stop_all()
        elif kind == "error":
            text, code = rest
            if self.error is None and not self.stopping:
                self.error = (f"{w.spec.name}: {text}", code)

    def _reap(self) -> None:
        """A worker that ended without a word died (a signal, the OOM killer): restarted
        on its own directory, which holds everything it had saved."""
        for w in self.workers:
            p = w.process
            if p is None or p.is_alive() or w.summary is not None:
                continue
            self._receive(timeout=0.05)  # its last words may still be in the pipe
            if w.summary is not None or self.error is not None:
                continue
            if w.restarts >= MAX_RESTARTS:
                self.error = (f"{w.spec.name} died {w.restarts + 1} times (last: exit code {p.exitcode}); "
                              f"its directory {Path(w.spec.out) / w.spec.name} keeps what it found", 1)
                return
            w.restarts += 1
            queue_dir = Path(w.spec.out) / w.spec.name / "queue"
            w.spec.resume = queue_dir.is_dir() and any(q.name.startswith("id:") for q in queue_dir.iterdir())
            if w.spec.max_time is not None:  # the campaign's clock does not start again
                w.spec.max_time = max(w.spec.max_time - (time.time() - self.started), 0.001)
            self.monitor.event(f"{w.spec.name} died (exit code {p.exitcode}); restarted"
                               + (" on its own queue" if w.spec.resume else ""))
            self._start(w)

    def _stop_all(self) -> None:
        """Asks every running worker to stop (SIGTERM: a worker stops as on Ctrl-C, and
        writes its final figures), then waits; a worker that does not stop is killed."""
        self.stopping = True
        for w in self.workers:
            if w.process is not None and w.process.is_alive() and w.summary is None:
                os.kill(w.process.pid, signal.SIGTERM)  # one that is done is left to tidy up
        deadline = time.monotonic() + STOP_GRACE_S
        while any(w.process is not None and w.process.is_alive() for w in self.workers):
            self._receive(timeout=0.1)
            if time.monotonic() > deadline:
                for w in self.workers:
                    if w.process is not None and w.process.is_alive():
                        w.process.kill()
                break
        for w in self.workers:
            if w.process is not None:
                w.process.join(timeout=1)
        self._receive(timeout=0.05)

    def status(self) -> Status:
        return aggregate_status([(w.spec.name, w.spec.cpu, w.status) for w in self.workers], self.started)

    def _summary(self) -> dict:
        summary = combine_summaries([(w.spec, w.summary or {}, w.restarts) for w in self.workers],
                                    time.time() - self.started, self.stop_reason)
        self.stop_reason = summary["stop_reason"]
        return summary


def aggregate_status(workers: list[tuple[str, int | None, Status | None]], started: float) -> Status:
    """The figures of all workers as one: sums of what adds up, the best of the rest."""
    rows = [st for _, _, st in workers if st is not None]
    st = Status(started=started, mode="starting")
    if rows:
        st.mode = rows[0].mode
        st.backend = rows[0].backend
        st.map_size = max(r.map_size for r in rows)
        for key in ("execs", "execs_per_sec", "crashes", "hangs", "total_crashes", "total_timeouts"):
            setattr(st, key, sum(getattr(r, key) for r in rows))
        for key in ("corpus", "favored", "edges", "cycles"):
            setattr(st, key, max(getattr(r, key) for r in rows))
        st.stability = min(r.stability for r in rows)
        st.last_find = max((r.last_find for r in rows if r.last_find), default=None)
        st.last_crash = max((r.last_crash for r in rows if r.last_crash), default=None)
    st.workers = list(workers)
    return st


def combine_summaries(workers: list[tuple[WorkerSpec, dict, int]], seconds: float, stop_reason: str) -> dict:
    """The campaign's final figures (`--json`) from each worker's (spec, summary, restarts)."""
    rows = [summary for _, summary, _ in workers]
    if not stop_reason:
        reasons = sorted({r["stop_reason"] for r in rows if r.get("stop_reason")})
        stop_reason = reasons[0] if len(reasons) == 1 else ", ".join(reasons) or "stopped"
    return {
        "stop_reason": stop_reason, "jobs": len(workers), "seconds": round(seconds, 3),
        "execs": sum(r.get("execs", 0) for r in rows),
        "execs_per_sec": round(sum(r.get("execs_per_sec", 0) for r in rows), 1),
        "saved_crashes": sum(r.get("saved_crashes", 0) for r in rows),
        "saved_hangs": sum(r.get("saved_hangs", 0) for r in rows),
        "imported": sum(r.get("imported", 0) for r in rows),
        "sync_seconds": round(sum(r.get("sync_seconds", 0) for r in rows), 3),
        "restarts": sum(restarts for *_, restarts in workers),
        "output": workers[0][0].out,
        "crashes": [c for r in rows for c in r.get("crashes", [])],
        "workers": [dict(r, name=spec.name, cpu=spec.cpu, main=spec.main, restarts=restarts)
                    for spec, r, restarts in workers],
    }

"""Benchmarks put the execution modes side by side on one target, and time process creation next to a snapshot restore.

`forkserver bench` runs the same inputs through exec, fork, snapshot (every backend
that works here) and persistent mode, with warm-up, repeated trials interleaved across
the rows of one ballast size, medians and spreads, and ratios against fork mode.
`forkserver bench spawn` times fork/vfork/posix_spawn/clone from a parent of a given RSS
and puts a snapshot restore of a big_heap target of the same RSS next to them.
"""
import argparse
import csv
import datetime
import io
import json
import mmap
import os
import platform
import shlex
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import ForkserverError, UsageError

MODE_ORDER = ["exec", "fork", "snapshot", "persistent"]
DEFAULT_SECONDS = 2.0
DEFAULT_WARMUP_S = 0.5
DEFAULT_TRIALS = 3
DEFAULT_BATCH = 256
DEFAULT_TIMEOUT_MS = 5000
EXEC_TRIAL_CAP_S = 1.0      # exec mode pays one execve per input: cap its share of the run
STEP_TARGET_S = 0.05        # one step (a batch, a C loop call) should take about this long
SLICE_S = 0.25              # trials are taken in slices of this length, in turn across the rows
MAX_STEP_RUNS = 1 << 16
RSS_ENV = "BIG_HEAP_MB"
SPAWN_PRIMITIVES = ["fork+exit+wait", "vfork+exec", "posix_spawn", "clone(VM|VFORK)"]  # fs_host_spawn_bench ids
SPAWN_DEFAULT_RSS_MB = [0, 64, 1024]
SPAWN_CHUNKS = 5
RESTORE_OPERATION = "snapshot restore"


# ---------------------------------------------------------------------------------------
# locating the bundled harnesses and their corpora


def checkout_root() -> Path:
    """The directory that holds harnesses/ and corpora/ (the checkout this package runs from)."""
    return Path(__file__).resolve().parent.parent


def bundled_harness(name: str) -> Path:
    """Path of harnesses/<name>.c in the checkout.

    Raises:
        UsageError: the checkout's harnesses are not there (an installed copy without them).
    """
    path = checkout_root() / "harnesses" / f"{name}.c"
    if not path.is_file():
        raise UsageError(f"the bundled harness {path} is missing: give a target after `--` "
                         "(and its inputs with -i)")
    return path


def default_corpus(command: list[str]) -> Path | None:
    """corpora/<name>/ for a target that is a harness source harnesses/<name>.c, else None."""
    if not command:
        return None
    source = Path(command[0])
    if source.suffix not in (".c", ".cc", ".cpp", ".cxx"):
        return None
    for corpora in (source.resolve().parent.parent / "corpora", Path("corpora"), checkout_root() / "corpora"):
        if (corpora / source.stem).is_dir():
            return corpora / source.stem
    return None


# ---------------------------------------------------------------------------------------
# small helpers: argument lists, statistics, process facts


def parse_int_list(text: str, what: str) -> list[int]:
    """Parses "0,64,1024" into [0, 64, 1024].

    Raises:
        UsageError: an item is not a non-negative integer.
    """
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what} takes comma-separated whole numbers, not {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UsageError(f"{what} takes comma-separated whole numbers >= 0, not {text!r}")
    return values


def parse_name_list(text: str, allowed: list[str], what: str) -> list[str]:
    """Parses "fork,snapshot" and checks every name against allowed.

    Raises:
        UsageError: an unknown name.
    """
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UsageError(f"{what}: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(allowed)}")
    return names


def median_or_none(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def vm_rss_mb(pid: int | str = "self") -> float | None:
    """Resident set size of a process in MiB (VmRSS), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def source_version() -> str | None:
    """The checkout's commit, with "+dirty" when the runtime or package differ from it; None outside git."""
    import subprocess

    root = checkout_root()
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "csrc", "forkserver"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty else "")


def machine_metadata(cpu: int | None) -> dict:
    """What a reader needs to judge the numbers: date, kernel, CPU, pinning."""
    from .config import SETTINGS

    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        thp = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_pinned": None if SETTINGS.no_affinity else cpu,
        "transparent_hugepage": thp,
        "python": platform.python_version(),
        "forkserver_version": __version__,
        "source": source_version(),
    }


class PinnedCpu:
    """Pins this process to one CPU for the length of a `with` block, then restores the old set."""

    def __init__(self, cpu: int | None):
        self.cpu = cpu
        self.saved = os.sched_getaffinity(0)

    def __enter__(self):
        from .executors.base import pin_to_cpu

        pin_to_cpu(self.cpu)
        return self

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.saved)


# ---------------------------------------------------------------------------------------
# output: terminal tables, JSON, CSV


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_num(value: float | None, digits: int = 0) -> str:
    """Thousands separators; small values keep two significant decimals (0.35, not 0)."""
    if value is None:
        return "-"
    if 0 < abs(value) < 10 and digits == 0:
        return f"{value:.2g}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def write_json(obj: dict, dest: str) -> None:
    """Writes obj to the file dest, or to stdout when dest is "-"."""
    text = json.dumps(obj, indent=2) + "\n"
    if dest == "-":
        sys.stdout.write(text)
    else:
        Path(dest).write_text(text)


def write_csv(rows: list[dict], dest: str) -> None:
    """One CSV line per row; lists are joined with ';'."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})
    if dest == "-":
        sys.stdout.write(buf.getvalue())
    else:
        Path(dest).write_text(buf.getvalue())


def progress(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# mode bench: what one row is, and how a row is driven


@dataclass(frozen=True)
class RowSpec:
    """One row of the table: a mode (and backend) on one build, driven from Python or C."""

    mode: str
    backend: str | None = None
    build: str = "forkserver"      # "forkserver" (our runtime) or "afl++" (afl-clang-fast)
    driver: str = "python"         # "python": the executors' API; "c": fs_host_*_loop

    @property
    def label(self) -> str:
        parts = [self.mode] + ([self.backend] if self.backend else [])
        text = "/".join(parts)
        if self.build != "forkserver":
            text += f" [{self.build}]"
        if self.driver != "python":
            text += f" ({self.driver} loop)"
        return text


@dataclass
class Trial:
    """Executions counted over some seconds of one row."""

    execs: int
    seconds: float

    @property
    def execs_per_sec(self) -> float:
        return self.execs / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RowResult:
    """Everything measured for one RowSpec at one ballast size."""

    spec: RowSpec
    rss_mb: int
    batch: int = 1
    target_rss_mb: float | None = None
    trials: list[Trial] = field(default_factory=list)
    restore_us: list[float] = field(default_factory=list)
    dirty_pages: list[int] = field(default_factory=list)
    exec_us: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    exit_codes: Counter = field(default_factory=Counter)  # runs that exited, by exit status
    error: str | None = None

    def median_eps(self) -> float | None:
        """Median exec/s over the trials."""
        return median_or_none([t.execs_per_sec for t in self.trials])

    def as_json(self, fork_eps: float | None) -> dict:
        """The `bench --json` row; fork_eps is the fork row's median exec/s (for ratio_vs_fork)."""
        eps = [t.execs_per_sec for t in self.trials]
        median = median_or_none(eps)
        dirty = median_or_none(self.dirty_pages)
        row = {
            "mode": self.spec.mode,
            "backend": self.spec.backend,
            "rss_mb": self.rss_mb,
            "execs": sum(t.execs for t in self.trials),
            "seconds": round(sum(t.seconds for t in self.trials), 4),
            "execs_per_sec": round(median, 1) if median is not None else None,
            "restore_us_p50": round(median_or_none(self.restore_us), 2) if self.restore_us else None,
            "dirty_pages_p50": (int(dirty) if dirty == int(dirty) else dirty) if dirty is not None else None,
            "build": self.spec.build,
            "driver": self.spec.driver,
            "trials": len(self.trials),
            "execs_per_sec_min": round(min(eps), 1) if eps else None,
            "execs_per_sec_max": round(max(eps), 1) if eps else None,
            "execs_per_sec_trials": [round(x, 1) for x in eps],
            "ratio_vs_fork": round(median / fork_eps, 3) if median and fork_eps else None,
            "batch": self.batch,
            "exec_us_p50": round(median_or_none(self.exec_us), 2) if self.exec_us else None,
            "target_rss_mb": round(self.target_rss_mb, 1) if self.target_rss_mb is not None else None,
            "outcomes": dict(self.outcomes),
            "exit_codes": {str(code): n for code, n in sorted(self.exit_codes.items())},
        }
        if self.error:
            row["error"] = self.error
        return row


class RowDriver:
    """Owns one executor and runs steps of inputs through it until a time budget is spent.

    A step is one snapshot batch (one wake-up), a chunk of fork/exec runs, or one call of
    a C loop; its size is calibrated during warm-up so that one step takes ~STEP_TARGET_S.
    """

    def __init__(self, spec: RowSpec, target, inputs: list[bytes], max_batch: int, cpu: int | None,
                 timeout_ms: int):
        from .executors import make_executor

        self.spec = spec
        self.inputs = inputs
        self.max_batch = max_batch
        self.executor = make_executor(spec.mode, target, timeout_ms, spec.backend or "auto", cpu)
        self.batch = 1          # inputs per wake-up (snapshot rows)
        self.step_runs = 1      # runs per step for the other rows, or batches per C loop call
        self.cursor = 0
        self.result: RowResult | None = None

    @property
    def batched(self) -> bool:
        return self.spec.mode == "snapshot"

    def start(self, result: RowResult) -> None:
        """Starts the executor; result receives this row's measurements.

        Raises:
            ForkserverError: the target cannot run in this mode or with this backend.
        """
        self.result = result
        self.executor.start()
        if self.spec.mode == "snapshot" and self.spec.backend and self.executor.backend != self.spec.backend:
            raise UsageError(f"asked for backend {self.spec.backend}, the runner uses {self.executor.backend}")
        session = getattr(self.executor, "session", None)
        if session is not None:
            result.target_rss_mb = vm_rss_mb(session.proc.pid)

    def _next_inputs(self, n: int) -> list[bytes]:
        out = [self.inputs[(self.cursor + i) % len(self.inputs)] for i in range(n)]
        self.cursor = (self.cursor + n) % len(self.inputs)
        return out

    def _record(self, results, keep: bool) -> None:
        if not keep:
            return
        r = self.result
        for res in results:
            r.outcomes[res.outcome.value] += 1
            if res.exit_code is not None:
                r.exit_codes[res.exit_code] += 1
            if res.restore_us is not None:
                r.restore_us.append(res.restore_us)
            if res.dirty_pages is not None:
                r.dirty_pages.append(res.dirty_pages)
            r.exec_us.append(res.exec_us)

    def step(self, keep: bool = True) -> int:
        """Runs one step; returns the number of executions it made."""
        if self.spec.driver == "c":
            return self._step_c(keep)
        if self.batched:
            results = self.executor.run_batch(self._next_inputs(self.batch))
        else:
            results = [self.executor.run(d) for d in self._next_inputs(self.step_runs)]
        self._record(results, keep)
        return len(results)

    def _step_c(self, keep: bool) -> int:
        from .native import check, ffi, lib

        ex = self.executor
        wall_ns = ffi.new("unsigned long long *")
        tally = ffi.new("struct fs_loop_tally *")
        ctl_w, st_r = ex.session.proc.ctl_w, ex.session.proc.st_r
        if self.spec.mode == "snapshot":
            batch = self._next_inputs(self.batch)
            ex.load_batch(batch)
            check(lib.fs_host_snapshot_loop(ctl_w, st_r, ex.ctl, ex.runner_pid, ex.timeout_ms,
                                            self.step_runs, wall_ns, tally), "snapshot C loop")
            runs = len(batch) * self.step_runs
            if keep:
                # timings: the last of the step_runs batches, whose results the control block holds
                for i in range(min(ex.ctl.completed, len(batch))):
                    r = ex.ctl.results[i]
                    self.result.restore_us.append(r.restore_ns / 1000)
                    self.result.dirty_pages.append(r.dirty_pages)
                    self.result.exec_us.append(r.exec_ns / 1000)
        else:
            ex.deliver(self._next_inputs(1)[0])
            check(lib.fs_host_fork_loop(ctl_w, st_r, ffi.cast("unsigned char *", ex.map_shm.ptr), ex.map.map_size,
                                        ex.timeout_ms, self.step_runs, wall_ns, tally), "fork C loop")
            runs = self.step_runs
        if keep:
            self._record_tally(tally)
        return runs

    def _record_tally(self, tally) -> None:
        """Outcomes exactly as the C loop saw them, run by run."""
        r = self.result
        for code in range(256):
            if tally.exits[code]:
                r.outcomes["ok"] += tally.exits[code]
                r.exit_codes[code] += tally.exits[code]
        crashes = sum(tally.signals[s] for s in range(65))
        if crashes:
            r.outcomes["crash"] += crashes
        if tally.timeouts:
            r.outcomes["timeout"] += tally.timeouts

    def _grow(self, step_s: float) -> bool:
        """Doubles the step size while a step is shorter than STEP_TARGET_S; False when done.
        Snapshot rows grow the batch first (up to --batch); C loops then grow the calls."""
        if step_s >= STEP_TARGET_S:
            return False
        if self.batched and self.batch < self.max_batch:
            self.batch = min(self.batch * 2, self.max_batch)
            return True
        if (self.batched and self.spec.driver == "python") or self.step_runs >= MAX_STEP_RUNS:
            return False
        self.step_runs *= 2
        return True

    def warm_up(self, seconds: float) -> None:
        """Runs for `seconds` without recording, calibrating the step size on the way."""
        t_end = time.perf_counter() + seconds
        growing = True
        while True:
            t0 = time.perf_counter()
            self.step(keep=False)
            step_s = time.perf_counter() - t0
            if growing:
                growing = self._grow(step_s)
            if time.perf_counter() >= t_end and not growing:
                break
            if time.perf_counter() >= t_end + 5 * seconds + 1:
                break  # slow target: stop calibrating
        self.result.batch = self.batch if self.batched else 1

    def trial(self, seconds: float) -> Trial:
        """Runs whole steps until `seconds` have passed."""
        execs = 0
        t0 = time.perf_counter()
        t_end = t0 + seconds
        now = t0
        while now < t_end:
            execs += self.step()
            now = time.perf_counter()
        return Trial(execs, now - t0)

    def close(self) -> None:
        self.executor.close()


# ---------------------------------------------------------------------------------------
# mode bench: which rows, and running them


@dataclass
class BenchPlan:
    """What to measure: the target command, its inputs, the rows, and the budgets."""

    command: list[str]
    inputs_path: Path
    inputs: list[bytes]
    specs: list[RowSpec]
    afl_targets: list[str]
    rss_mb: list[int]
    rss_env: str
    set_rss_env: bool
    seconds: float
    trials: int
    warmup_s: float
    batch: int
    cpu: int | None
    timeout_ms: int


def default_specs(info, modes: list[str] | None, backends: list[str], c_loop: bool) -> list[RowSpec]:
    """The rows for our target: every requested mode, snapshot once per backend.

    Args:
        info: the target's BinaryInfo (markers).
        modes: requested modes, or None for the defaults (exec, fork, snapshot when the
            target has our runtime, persistent when it has the persistent marker).
        backends: snapshot backends to measure.
        c_loop: also drive fork and snapshot (first backend) from the C loops.
    Returns:
        The row specs in table order.
    """
    if modes is None:
        modes = ["exec", "fork"]
        if info.forkserver_runtime:
            modes.append("snapshot")
        if info.persistent:
            modes.append("persistent")
    specs = []
    for mode in MODE_ORDER:
        if mode not in modes:
            continue
        if mode == "snapshot":
            specs += [RowSpec("snapshot", b) for b in backends]
        else:
            specs.append(RowSpec(mode))
    if c_loop:
        if "fork" in modes:
            specs.append(RowSpec("fork", driver="c"))
        if "snapshot" in modes and backends:
            specs.append(RowSpec("snapshot", backends[0], driver="c"))
    return specs


def afl_spec(info) -> RowSpec:
    """An AFL++ build runs in persistent mode when it carries the marker, else in fork mode."""
    return RowSpec("persistent" if info.persistent else "fork", build="afl++")


def make_targets(plan: BenchPlan, rss_mb: int) -> tuple[object, list[object]]:
    """Our target and the AFL++ targets, with the ballast size in their environment
    (left alone when --rss-mb was not given)."""
    from .target import Target

    env = {plan.rss_env: str(rss_mb)} if plan.set_rss_env else {}
    ours = Target.from_command(plan.command, env=env)
    afl = [Target.from_command([path], env=env) for path in plan.afl_targets]
    return ours, afl


def start_drivers(plan: BenchPlan, rss_mb: int, pairs) -> list:
    """Starts one driver per (spec, target); a row that cannot start keeps its error."""
    drivers = []
    for spec, target in pairs:
        result = RowResult(spec, rss_mb)
        driver = None
        try:
            driver = RowDriver(spec, target, plan.inputs, plan.batch if spec.mode == "snapshot" else 1,
                               plan.cpu, plan.timeout_ms)
            driver.start(result)
            drivers.append(driver)
        except ForkserverError as exc:
            if driver is not None:
                driver.close()
            result.error = str(exc)
            progress(f"rss {rss_mb} MiB: {spec.label} cannot run: {exc}")
            drivers.append(FailedDriver(spec, result))
    return drivers


class FailedDriver:
    """A row that could not start: holds its error, runs nothing."""

    def __init__(self, spec: RowSpec, result: RowResult):
        self.spec, self.result = spec, result

    def close(self) -> None:
        pass


def _budget(spec: RowSpec, seconds: float) -> float:
    return min(seconds, EXEC_TRIAL_CAP_S) if spec.mode == "exec" else seconds


def _attempt(driver: RowDriver, what: str, fn) -> bool:
    """Runs fn(); on a ForkserverError records it as the row's error, closes the driver
    and returns False."""
    try:
        fn()
        return True
    except ForkserverError as exc:
        driver.result.error = f"{what}: {exc}"
        progress(f"rss {driver.result.rss_mb} MiB: {driver.spec.label} failed during {what}: {exc}")
        driver.close()
        return False


def interleave_ok(rss_mb: int, rows: int) -> bool:
    """Whether every row's target can stay alive at once (else rows run one after another)."""
    try:
        with open("/proc/meminfo") as f:
            avail_kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return rss_mb == 0
    # a fork server per row (runners share its pages copy-on-write), one full copy for the
    # full-copy backend, and 40% of the memory left for everything else
    return rss_mb * (rows + 1) < avail_kb / 1024 * 0.6


def measure_rss(plan: BenchPlan, rss_mb: int) -> list[RowResult]:
    """Measures every row at one ballast size. Trials are interleaved across rows so that
    slow phases of a noisy machine hit all rows alike."""
    ours, afl = make_targets(plan, rss_mb)
    pairs = [(spec, ours) for spec in plan.specs] + [(afl_spec(t.info), t) for t in afl]
    try:
        if interleave_ok(rss_mb, len(pairs)):
            return measure_group(plan, rss_mb, pairs)
        progress(f"rss {rss_mb} MiB: not enough memory to keep {len(pairs)} targets alive; rows run one by one")
        return [r for pair in pairs for r in measure_group(plan, rss_mb, [pair])]
    finally:
        for t in [ours, *afl]:
            t.cleanup()


def run_sliced_trial(live: list[RowDriver], seconds: float, label: str) -> list[RowDriver]:
    """One trial of every live row, cut into slices of ~SLICE_S taken in turn, so that a
    slow phase of the machine lands on every row alike. Returns the rows still alive."""
    slices = {id(d): max(1, round(_budget(d.spec, seconds) / SLICE_S)) for d in live}
    rounds = max(slices.values(), default=0)
    totals = {id(d): Trial(0, 0.0) for d in live}

    def one_slice(d: RowDriver) -> None:
        t = d.trial(_budget(d.spec, seconds) / slices[id(d)])
        totals[id(d)].execs += t.execs
        totals[id(d)].seconds += t.seconds

    def takes_part(d: RowDriver, k: int) -> bool:  # a row's slices spread evenly over the rounds
        n = slices[id(d)]
        return (k * n) // rounds != ((k + 1) * n) // rounds

    for k in range(rounds):
        live = [d for d in live if not takes_part(d, k) or _attempt(d, label, lambda d=d: one_slice(d))]
    for d in live:
        d.result.trials.append(totals[id(d)])
    return live


def measure_group(plan: BenchPlan, rss_mb: int, pairs) -> list[RowResult]:
    """Starts the rows of pairs together, warms each up, then runs trial i of every row
    before trial i + 1 of any, each trial interleaved slice by slice across the rows."""
    drivers = start_drivers(plan, rss_mb, pairs)
    live = [d for d in drivers if isinstance(d, RowDriver)]
    try:
        live = [d for d in live if _attempt(d, "warm-up", lambda d=d: d.warm_up(_budget(d.spec, plan.warmup_s)))]
        for i in range(plan.trials):
            live = run_sliced_trial(live, plan.seconds, f"trial {i + 1}")
            progress(f"rss {rss_mb} MiB: trial {i + 1}/{plan.trials}: "
                     + ", ".join(f"{d.spec.label} {d.result.trials[-1].execs_per_sec:,.0f}/s" for d in live))
    finally:
        for d in drivers:
            d.close()
    return [d.result for d in drivers]


def fork_baseline(results: list[RowResult], rss_mb: int) -> float | None:
    """Median exec/s of our Python-driven fork row at this ballast size."""
    for r in results:
        if r.rss_mb == rss_mb and r.spec == RowSpec("fork"):
            return r.median_eps()
    return None


def rows_json(results: list[RowResult]) -> list[dict]:
    """The JSON rows, each with its ratio against the fork row of its RSS."""
    return [r.as_json(fork_baseline(results, r.rss_mb)) for r in results]


def mode_table(rows: list[dict]) -> str:
    """The terminal table of `forkserver bench`."""
    headers = ["mode", "backend", "rss_mb", "exec/s", "min..max", "vs fork", "restore_us p50", "dirty p50", "batch"]
    lines = []
    for r in rows:
        mode = r["mode"] + (f" [{r['build']}]" if r["build"] != "forkserver" else "") + \
            (f" ({r['driver']} loop)" if r["driver"] != "python" else "")
        if r.get("error"):
            lines.append([mode, r["backend"] or "-", str(r["rss_mb"]), "error", r["error"][:60], "", "", "", ""])
            continue
        lines.append([
            mode, r["backend"] or "-", str(r["rss_mb"]), fmt_num(r["execs_per_sec"]),
            f"{fmt_num(r['execs_per_sec_min'])}..{fmt_num(r['execs_per_sec_max'])}",
            fmt_ratio(r["ratio_vs_fork"]), fmt_num(r["restore_us_p50"], 1),
            fmt_num(r["dirty_pages_p50"]), str(r["batch"]),
        ])
    return format_table(headers, lines)


def loop_ratios(rows: list[dict]) -> list[str]:
    """One line per row measured both ways: Python-driven exec/s over C-driven exec/s."""
    out = []
    for c_row in (r for r in rows if r["driver"] == "c" and r["execs_per_sec"]):
        for py in rows:
            same = (py["mode"], py["backend"], py["rss_mb"], py["build"]) == \
                (c_row["mode"], c_row["backend"], c_row["rss_mb"], c_row["build"])
            if same and py["driver"] == "python" and py["execs_per_sec"]:
                name = c_row["mode"] + (f"/{c_row['backend']}" if c_row["backend"] else "")
                out.append(f"python-driven vs C-driven loop, {name}, rss {c_row['rss_mb']} MiB: "
                           f"{py['execs_per_sec'] / c_row['execs_per_sec']:.2f}x")
    return out


def run_mode_bench(plan: BenchPlan) -> list[dict]:
    """Measures every row at every ballast size.

    Args:
        plan: what to measure.
    Returns:
        The JSON rows (see DESIGN.md, `bench --json`), in table order.
    """
    results: list[RowResult] = []
    with PinnedCpu(plan.cpu):
        for rss_mb in plan.rss_mb:
            progress(f"rss {rss_mb} MiB: {len(plan.specs) + len(plan.afl_targets)} rows, {plan.trials} trials "
                     f"of {plan.seconds:g}s (exec mode {min(plan.seconds, EXEC_TRIAL_CAP_S):g}s)")
            results += measure_rss(plan, rss_mb)
    return rows_json(results)


# ---------------------------------------------------------------------------------------
# spawn bench


class Ballast:
    """N MiB of private anonymous memory, every page touched, in this process."""

    def __init__(self, rss_mb: int):
        self.map = None
        if rss_mb:
            self.map = mmap.mmap(-1, rss_mb << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                                 prot=mmap.PROT_READ | mmap.PROT_WRITE)
            import numpy as np

            view = np.frombuffer(self.map, dtype=np.uint8)
            view[::mmap.PAGESIZE] = 1
            del view

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None


def time_primitive(primitive: int, iterations: int, budget_s: float, exec_path: str) -> dict:
    """Times one process-creation primitive with fs_host_spawn_bench.

    Args:
        primitive: index into SPAWN_PRIMITIVES.
        iterations: wanted operations (fewer when they would take longer than budget_s).
        budget_s: rough time budget for this primitive.
        exec_path: program the exec-style primitives run.
    Returns:
        {"us_per_op": median of SPAWN_CHUNKS chunk means, "us_min", "us_max", "iterations"}.
    """
    from .native import check, ffi, lib

    ns = ffi.new("double *")
    path = exec_path.encode()
    check(lib.fs_host_spawn_bench(primitive, 1, path, ns), SPAWN_PRIMITIVES[primitive])  # warm-up and estimate
    fits = int(budget_s / max(ns[0] * 1e-9, 1e-7))
    per_chunk = max(1, min(iterations, fits) // SPAWN_CHUNKS)
    means = []
    for _ in range(SPAWN_CHUNKS):
        check(lib.fs_host_spawn_bench(primitive, per_chunk, path, ns), SPAWN_PRIMITIVES[primitive])
        means.append(ns[0] / 1000)
    return {"us_per_op": round(statistics.median(means), 2), "us_min": round(min(means), 2),
            "us_max": round(max(means), 2), "iterations": per_chunk * SPAWN_CHUNKS}


def time_restore(rss_mb: int, backend: str, seconds: float, cpu: int | None) -> dict:
    """Snapshot restore of the big_heap harness holding rss_mb MiB.

    Returns:
        {"us_per_op": restore_us p50, "us_min"/"us_max": p5/p95, "iterations",
        "dirty_pages_p50", "backend", "rss_measured_mb", "start_ms" (start-up: heap init,
        fork server, snapshot), "snapshot_us" (the snapshot alone)}, or {"error": ...}
        when the runner cannot start (a big heap can exceed FORKSERVER_INIT_TIMEOUT_MS).
    """
    from .executors import SnapshotExecutor
    from .inputs import read_inputs
    from .target import Target

    inputs = [d for _, d in read_inputs(checkout_root() / "corpora" / "big_heap")]
    target = Target.from_command([str(bundled_harness("big_heap"))], env={RSS_ENV: str(rss_mb)})
    restore_us, dirty, execs = [], [], 0
    try:
        t0 = time.perf_counter()
        with SnapshotExecutor(target, DEFAULT_TIMEOUT_MS, cpu, backend=backend) as ex:
            start_ms = (time.perf_counter() - t0) * 1000
            rss = vm_rss_mb(ex.session.proc.pid)
            snapshot_us = ex.snapshot_us
            ex.run_batch(inputs * 4)  # warm-up
            t_end = time.perf_counter() + seconds
            while time.perf_counter() < t_end:
                for res in ex.run_batch(inputs * 32):
                    if res.restore_us is not None:
                        restore_us.append(res.restore_us)
                        dirty.append(res.dirty_pages)
                    execs += 1
            used = ex.backend
    except ForkserverError as exc:
        return {"error": str(exc), "backend": backend}
    finally:
        target.cleanup()
    if not restore_us:
        return {"error": "no input completed a restore", "backend": used}
    q = statistics.quantiles(restore_us, n=20) if len(restore_us) > 1 else restore_us * 19
    return {"us_per_op": round(statistics.median(restore_us), 2), "us_min": round(q[0], 2),
            "us_max": round(q[-1], 2), "iterations": execs, "dirty_pages_p50": statistics.median(dirty),
            "backend": used, "rss_measured_mb": round(rss, 1) if rss else None,
            "start_ms": round(start_ms, 1), "snapshot_us": round(snapshot_us, 1)}


def default_restore_backend() -> str:
    """pagemap-scan where it works (the restore DESIGN.md's table measures), else auto."""
    from .doctor import probe_backend

    return "pagemap-scan" if probe_backend("pagemap-scan")[0] else "auto"


def run_spawn_bench(rss_list: list[int], iterations: int, budget_s: float, exec_path: str, backend: str,
                    cpu: int | None, with_restore: bool = True) -> list[dict]:
    """Times the process-creation primitives from a parent of each RSS, and a snapshot restore.

    Args:
        rss_list: ballast sizes in MiB.
        iterations: operations per primitive (capped by budget_s).
        budget_s: rough time per primitive, and the restore measurement's duration.
        exec_path: the program vfork+exec and posix_spawn run.
        backend: snapshot backend for the restore rows.
        cpu: CPU to pin to, or None.
        with_restore: also measure the snapshot restore of big_heap.
    Returns:
        One row per (rss, operation): rss_mb, rss_measured_mb, operation, us_per_op,
        us_min, us_max, iterations (and dirty_pages_p50, backend for restores).
    """
    rows = []
    with PinnedCpu(cpu):
        for rss_mb in rss_list:
            ballast = Ballast(rss_mb)
            try:
                parent_rss = vm_rss_mb()
                for i, name in enumerate(SPAWN_PRIMITIVES):
                    row = {"rss_mb": rss_mb, "rss_measured_mb": round(parent_rss, 1), "operation": name}
                    row.update(time_primitive(i, iterations, budget_s, exec_path))
                    rows.append(row)
                    progress(f"spawn: rss {rss_mb} MiB (parent {parent_rss:.0f} MiB): {name} "
                             f"{row['us_per_op']:,.1f} us")
            finally:
                ballast.close()
            if with_restore:
                row = {"rss_mb": rss_mb, "operation": RESTORE_OPERATION}
                row.update(time_restore(rss_mb, backend, budget_s, cpu))
                rows.append(row)
                if "error" in row:
                    progress(f"spawn: rss {rss_mb} MiB: snapshot restore failed: {row['error']}")
                else:
                    progress(f"spawn: rss {rss_mb} MiB: snapshot restore ({row['backend']}) "
                             f"{row['us_per_op']:,.1f} us, {row['dirty_pages_p50']:g} dirty pages")
    return rows


def spawn_table(rows: list[dict]) -> str:
    """Microseconds per operation: one line per RSS, one column per operation."""
    operations = list(dict.fromkeys(r["operation"] for r in rows))
    headers = ["rss_mb", "parent RSS"] + [f"{op} us" for op in operations] + ["dirty pages"]
    lines = []
    for rss_mb in dict.fromkeys(r["rss_mb"] for r in rows):
        by_op = {r["operation"]: r for r in rows if r["rss_mb"] == rss_mb}
        parent = next((r["rss_measured_mb"] for r in by_op.values() if r["operation"] != RESTORE_OPERATION), None)
        dirty = by_op.get(RESTORE_OPERATION, {}).get("dirty_pages_p50")
        cells = [fmt_num(by_op.get(op, {}).get("us_per_op"), 1) if "error" not in by_op.get(op, {}) else "error"
                 for op in operations]
        lines.append([str(rss_mb), fmt_num(parent)] + cells + [fmt_num(dirty)])
    return format_table(headers, lines)


# ---------------------------------------------------------------------------------------
# the command line


def add_bench_parser(sub) -> None:
    """Adds `bench` (modes side by side) and `bench spawn` to the CLI's subparsers."""
    p = sub.add_parser("bench", help="exec/s of each mode side by side",
                       description="Runs the same inputs through each mode and backend; with no target, "
                                   "the bundled harnesses/maze.c on corpora/maze.")
    p.add_argument("--modes", metavar="LIST",
                   help=f"comma list from {','.join(MODE_ORDER)} (default: all the target supports)")
    p.add_argument("--backends", metavar="LIST",
                   help="snapshot backends (default: every one `forkserver doctor` finds working)")
    p.add_argument("--rss-mb", metavar="LIST",
                   help="ballast sizes in MiB, set in the target's environment (see --rss-env), e.g. 0,64,1024")
    p.add_argument("--rss-env", default=RSS_ENV, metavar="NAME",
                   help="environment variable that sets the ballast size")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="S",
                   help=f"duration of one trial per row (exec mode: at most {EXEC_TRIAL_CAP_S:g}s)")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS, metavar="N",
                   help="trials per row (median and min..max)")
    p.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, metavar="S", help="warm-up seconds per row")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N", help="snapshot mode: inputs per wake-up")
    p.add_argument("--c-loop", action=argparse.BooleanOptionalAction, default=True,
                   help="also drive fork and snapshot from the C loops (Python overhead check)")
    p.add_argument("--afl-target", action="append", default=[], metavar="BIN",
                   help="an afl-clang-fast build of the same harness, measured as extra rows")
    p.add_argument("--cpu", default="auto", metavar="N|none|auto",
                   help="CPU to pin the orchestrator and targets to (auto: the idlest CPU over 0.3 s)")
    p.add_argument("-t", dest="timeout_ms", type=int, default=DEFAULT_TIMEOUT_MS, metavar="MS",
                   help="timeout per input")
    p.add_argument("-i", dest="input", metavar="INPUTS", help="input file or directory (default: corpora/<harness>/)")
    p.add_argument("--json", metavar="F", help="write the results as JSON to F (- for stdout)")
    p.add_argument("--csv", metavar="F", help="write the rows as CSV to F (- for stdout)")
    p.add_argument("--plot", metavar="F", help="plot exec/s against RSS to F (PNG; needs matplotlib)")
    p.set_defaults(func=cli_bench, bench_command=None)

    bench_sub = p.add_subparsers(dest="bench_command", metavar="{spawn}")
    s = bench_sub.add_parser("spawn", help="process-creation cost against parent RSS, next to a snapshot restore")
    s.add_argument("--rss-mb", dest="spawn_rss_mb", metavar="LIST", default=",".join(map(str, SPAWN_DEFAULT_RSS_MB)),
                   help="parent sizes in MiB (e.g. 0,64,1024,4096)")
    s.add_argument("--iterations", type=int, default=200, metavar="N",
                   help="operations per primitive (capped by --seconds)")
    s.add_argument("--seconds", dest="spawn_seconds", type=float, default=1.0, metavar="S",
                   help="time budget per primitive and for each restore measurement")
    s.add_argument("--exec-path", default="/bin/true", metavar="PATH", help="program for vfork+exec and posix_spawn")
    s.add_argument("--backend", metavar="NAME",
                   help="snapshot backend for the restore rows (default: pagemap-scan where it works, else auto)")
    s.add_argument("--no-restore", action="store_true", help="skip the snapshot restore rows")
    s.add_argument("--cpu", dest="spawn_cpu", default="auto", metavar="N|none|auto",
                   help="CPU to pin to (auto: the idlest)")
    s.add_argument("--json", dest="spawn_json", metavar="F", help="write the results as JSON to F (- for stdout)")
    s.add_argument("--csv", dest="spawn_csv", metavar="F", help="write the rows as CSV to F (- for stdout)")
    s.add_argument("--plot", dest="spawn_plot", metavar="F", help="plot us per operation against RSS to F (PNG)")


def idlest_cpu(sample_s: float = 0.3) -> int:
    """The allowed CPU with the most idle time over sample_s: a busy neighbour pinned to
    one CPU (another fuzzer, a stuck target) would otherwise halve every number."""
    allowed = sorted(os.sched_getaffinity(0))

    def idle_ticks() -> dict[int, int]:
        ticks = {}
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks[int(name[3:])] = int(fields[3]) + int(fields[4])  # idle + iowait
        return ticks

    try:
        before = idle_ticks()
        time.sleep(sample_s)
        after = idle_ticks()
    except (OSError, ValueError, IndexError):
        return allowed[0]
    return max(allowed, key=lambda c: (after.get(c, 0) - before.get(c, 0), -c))


def _cpu_arg(value: str) -> int | None:
    """--cpu: N, none, or auto (for benchmarks: the idlest CPU right now)."""
    if value == "auto":
        from .config import SETTINGS

        return None if SETTINGS.no_affinity else idlest_cpu()
    from .cli import _cpu

    return _cpu(value)


def _check_plot_available(path: str | None) -> None:
    if path:
        from .plot import require_matplotlib

        require_matplotlib()


def _emit(text: str, json_dest: str | None) -> None:
    """Human output goes to stderr when stdout carries the JSON."""
    print(text, file=sys.stderr if json_dest == "-" else sys.stdout)


def _command_line(args, command: list[str]) -> str:
    """A command line that reproduces this run."""
    parts = ["forkserver", "bench"]
    if args.modes:
        parts += ["--modes", args.modes]
    if args.backends:
        parts += ["--backends", args.backends]
    if args.rss_mb is not None:
        parts += ["--rss-mb", args.rss_mb]
    parts += ["--seconds", f"{args.seconds:g}", "--trials", str(args.trials),
              "--warmup", f"{args.warmup:g}", "--batch", str(args.batch), "--cpu", args.cpu]
    if not args.c_loop:
        parts.append("--no-c-loop")
    for afl in args.afl_target:
        parts += ["--afl-target", afl]
    if args.input:
        parts += ["-i", args.input]
    return shlex.join(parts + (["--", *command] if command else []))


def build_plan(args, command: list[str]) -> BenchPlan:
    """Turns the parsed options into a BenchPlan (resolving the default target and inputs).

    Raises:
        UsageError: bad option values, or no inputs.
    """
    from .doctor import available_backends
    from .executors import BACKENDS
    from .inputs import read_inputs
    from .target import Target

    if args.seconds <= 0 or args.trials < 1 or args.warmup < 0 or args.batch < 1:
        raise UsageError("--seconds must be > 0, --trials and --batch >= 1, --warmup >= 0")
    if not command:
        command = [str(bundled_harness("maze"))]
    inputs_path = Path(args.input) if args.input else default_corpus(command)
    if inputs_path is None:
        raise UsageError("give the inputs with -i FILE_OR_DIR (no corpora/<name>/ found for this target)")
    inputs = [data for _, data in read_inputs(inputs_path)]
    modes = parse_name_list(args.modes, MODE_ORDER, "--modes") if args.modes else None
    backends = parse_name_list(args.backends, BACKENDS, "--backends") if args.backends else available_backends()
    if args.rss_mb is not None:
        rss = parse_int_list(args.rss_mb, "--rss-mb")
    else:  # leave the environment alone; report the ballast it asks for, if any
        inherited = os.environ.get(args.rss_env, "0")
        rss = [int(inherited)] if inherited.isdigit() else [0]
    probe = Target.from_command(command)  # builds a source once, and reads the markers
    probe.cleanup()
    if args.rss_mb is not None and args.rss_env.encode() not in probe.path.read_bytes():
        progress(f"warning: {probe.path.name} does not mention {args.rss_env}: --rss-mb may change nothing")
    return BenchPlan(command=command, inputs_path=inputs_path, inputs=inputs,
                     specs=default_specs(probe.info, modes, backends, args.c_loop),
                     afl_targets=list(args.afl_target), rss_mb=rss, rss_env=args.rss_env,
                     set_rss_env=args.rss_mb is not None, seconds=args.seconds,
                     trials=args.trials, warmup_s=args.warmup, batch=args.batch, cpu=_cpu_arg(args.cpu),
                     timeout_ms=args.timeout_ms)


def cli_bench(args, command) -> int:
    """`forkserver bench` and `forkserver bench spawn`.

    Args:
        args: the parsed options (see add_bench_parser).
        command: the target command line after `--` (empty: the bundled maze harness).
    Returns:
        The exit code: 0, or 1 when some row failed.
    """
    if args.bench_command == "spawn":
        return cli_bench_spawn(args, command)
    _check_plot_available(args.plot)
    plan = build_plan(args, command)
    rows = run_mode_bench(plan)
    report = {
        "command": "bench",
        **machine_metadata(plan.cpu),
        "command_line": _command_line(args, command),
        "target": plan.command,
        "inputs": str(plan.inputs_path),
        "input_count": len(plan.inputs),
        "rss_env": plan.rss_env,
        "seconds_per_trial": plan.seconds,
        "exec_seconds_per_trial": min(plan.seconds, EXEC_TRIAL_CAP_S),
        "warmup_seconds": plan.warmup_s,
        "trials": plan.trials,
        "batch": plan.batch,
        "notes": "execs_per_sec is the median over trials; execs and seconds are totals over all trials; "
                 "ratio_vs_fork divides by the python-driven fork row of the same rss_mb",
        "rows": rows,
    }
    _emit(mode_table(rows), args.json)
    for line in loop_ratios(rows):
        _emit(line, args.json)
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(rows, args.csv)
    if args.plot:
        from .plot import plot_modes

        plot_modes(rows, args.plot, title=f"exec/s by mode: {Path(plan.command[0]).name}")
    return 1 if any(r.get("error") for r in rows) else 0


def cli_bench_spawn(args, command) -> int:
    """`forkserver bench spawn`: process creation against parent RSS, next to a restore."""
    if command:
        raise UsageError("`bench spawn` takes no target")
    if args.iterations < 1 or args.spawn_seconds <= 0:
        raise UsageError("--iterations must be >= 1 and --seconds > 0")
    _check_plot_available(args.spawn_plot)
    rss = parse_int_list(args.spawn_rss_mb, "--rss-mb")
    cpu = _cpu_arg(args.spawn_cpu)
    backend = args.backend or default_restore_backend()
    rows = run_spawn_bench(rss, args.iterations, args.spawn_seconds, args.exec_path, backend, cpu,
                           with_restore=not args.no_restore)
    parts = ["forkserver", "bench", "spawn", "--rss-mb", args.spawn_rss_mb, "--iterations", str(args.iterations),
             "--seconds", f"{args.spawn_seconds:g}", "--backend", backend, "--cpu", args.spawn_cpu]
    report = {
        "command": "bench spawn",
        **machine_metadata(cpu),
        "command_line": shlex.join(parts + (["--no-restore"] if args.no_restore else [])),
        "exec_path": args.exec_path,
        "notes": "us_per_op: median of chunk means (spawn) or p50 (restore); us_min/us_max: chunk min/max "
                 "(spawn) or p5/p95 (restore); rss_measured_mb: VmRSS of the parent (spawn) or of the "
                 "big_heap fork server (restore)",
        "rows": rows,
    }
    _emit(spawn_table(rows), args.spawn_json)
    for row in rows:
        if "error" in row:
            _emit(f"rss {row['rss_mb']} MiB, {row['operation']}: {row['error']}", args.spawn_json)
    if args.spawn_json:
        write_json(report, args.spawn_json)
    if args.spawn_csv:
        write_csv(rows, args.spawn_csv)
    if args.spawn_plot:
        from .plot import plot_spawn

        plot_spawn(rows, args.spawn_plot, title="process creation vs snapshot restore, by RSS")
    return 1 if any("error" in r for r in rows) else 0

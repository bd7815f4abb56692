"""The mode bench: the same inputs through exec, fork, snapshot (each backend) and
persistent mode, with warm-up, trials interleaved across the rows of one ballast size,
medians, spreads and ratios against fork mode."""
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ForkserverError, UsageError
from .machine import PinnedCpu, vm_rss_mb
from .report import fmt_num, fmt_ratio, format_table, median_or_none, progress


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
        from ..executors import make_executor

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
        ex = self.executor
        if self.spec.mode == "snapshot":
            loop = ex.run_c_loop(self._next_inputs(self.batch), self.step_runs)
            if keep:
                for res in loop.last_batch:  # timings of the last batch the control block holds
                    self.result.restore_us.append(res.restore_us)
                    self.result.dirty_pages.append(res.dirty_pages)
                    self.result.exec_us.append(res.exec_us)
        else:
            loop = ex.run_c_loop(self._next_inputs(1)[0], self.step_runs)
        if keep:
            for outcome, n in loop.outcomes.items():
                self.result.outcomes[outcome] += n
            for code, n in loop.exit_codes.items():
                self.result.exit_codes[code] += n
        return loop.runs

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
    from ..target import Target

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

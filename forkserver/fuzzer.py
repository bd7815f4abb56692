"""The fuzzing loop of `forkserver fuzz`: schedule an entry, run a batch of its havoc
mutants, keep what the feedbacks and objectives want.

In snapshot mode the mutants are written by C straight into the runner's control block
and a whole batch runs in one wake-up; the runner classifies each input against the
virgin map. Python looks only at the flagged inputs (new coverage, crashes, hangs):
it reads their bytes back, calibrates or confirms them, and saves them. Fork and
persistent mode run the same loop one input per round trip."""
import os
import shlex
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .calibration import Stability, calibrate
from .cmp_stage import InputToState
from .corpus import Corpus, Entry
from .errors import InputError, RunnerError
from .executors import ExecResult, Executor, Outcome, SnapshotExecutor
from .executors import AutoExecutor
from .feedbacks import CoverageFeedback
from .monitor import Monitor, Status
from .mutators import Havoc, parse_autodict
from .novelty import Novelty, VirginMap, larger
from .objectives import Objectives
from .outdir import OutputDir, Stats
from .scheduler import Scheduler
from .sync import SYNC_EVERY_S

EXIT_ON_CRASH_STATUS = 77  # libFuzzer's exit status for a crash found
STATS_EVERY_S = 5.0        # fuzzer_stats and plot_data
REFRESH_EVERY_S = 0.25     # the monitor's figures (the live panel's rate)


@dataclass
class FuzzOptions:
    seed: int = 0
    hang_timeout_ms: int = 2000
    max_time: float | None = None
    max_runs: int | None = None
    exit_on_crash: bool = False
    batch: int = 256                     # mutants per wake-up in snapshot mode
    tokens: list[bytes] = field(default_factory=list)
    repro_prefix: list[str] = field(default_factory=list)   # `forkserver run --mode M`
    target_command: list[str] = field(default_factory=list)
    command_line: list[str] = field(default_factory=list)


class Stop(Exception):
    """Ends the campaign: a limit was reached, or --exit-on-crash saw a crash."""


class Fuzzer:
    def __init__(self, executor: Executor, outdir: OutputDir, options: FuzzOptions, monitor: Monitor,
                 input_to_state: InputToState | None = None, sync=None, shared_crashes=None):
        """sync: where peers' finds come from (sync.SyncDir, or the Ray worker's link);
        shared_crashes: the crash uniqueness the peers share (shared_crashes.py)."""
        self.executor = executor
        self.i2s = input_to_state
        self.out = outdir
        self.opts = options
        self.monitor = monitor
        self.virgin = VirginMap()
        executor.use_virgin(self.virgin)
        self.coverage = CoverageFeedback(self.virgin)
        self.corpus = Corpus()
        self.rng = np.random.default_rng(options.seed)
        self.scheduler = Scheduler(self.corpus, self.rng)
        self.objectives = Objectives(options.hang_timeout_ms, shared_crashes)
        self.sync = sync
        self.imported = 0            # peers' entries that were new here
        self.sync_seconds = 0.0      # time spent importing them
        self._last_sync = time.monotonic()
        self.stability = Stability()
        self.status = Status()
        self.execs = 0
        self.execs_before = 0        # a resumed run's earlier execs
        self.runtime_before = 0.0
        self.crash_repros: list[tuple[str, str]] = []
        self.saved_crashes: list[dict] = []  # path, signal, sanitizer summary, reproduction
        self.summary: dict = {}              # the final figures (`fuzz --json`)
        self.stop_reason = ""
        self.found_crash = False
        self._started = time.monotonic()
        self._last_stats = 0.0
        self._last_refresh = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self.havoc: Havoc | None = None

    # ---- the campaign ----

    def run(self, seeds: list[tuple[str, bytes]] | None, resume: bool = False) -> int:
        """Fuzzes until a limit or Ctrl-C; returns the exit status."""
        with self.executor, (self.i2s or nullcontext()):
            self._setup_havoc()
            self.status.map_size = self._map_size()
            self.out.write_cmdline(self.opts.command_line)
            self.monitor.start(self._refresh())
            try:
                if resume:
                    self._resume()
                else:
                    self._load_seeds(seeds or [])
                if self.sync is not None:
                    self._sync()
                while True:
                    self._fuzz_one(self.scheduler.next())
            except Stop as stop:
                self.stop_reason = str(stop)
            except KeyboardInterrupt:
                self.stop_reason = "interrupted"
            except Exception as exc:
                self.stop_reason = f"error: {exc}"
                raise
            finally:
                self._flush()
                final = self._refresh()
                final.execs_per_sec = self.execs / max(time.monotonic() - self._started, 1e-9)  # the whole run's
                self.objectives.close()
                self.virgin.close()
                self.monitor.stop(final, self.stop_reason, self.crash_repros)
                self.summary = {
                    "stop_reason": self.stop_reason, "mode": final.mode, "backend": final.backend,
                    "seconds": round(final.run_time, 3), "execs": self.execs,
                    "execs_per_sec": round(final.execs_per_sec, 1), "corpus": final.corpus, "edges": final.edges,
                    "stability": round(final.stability, 2), "saved_crashes": final.crashes,
                    "crashing_runs": final.total_crashes, "saved_hangs": final.hangs,
                    "timeouts": final.total_timeouts, "output": str(self.out.path), "crashes": self.saved_crashes}
                if self.sync is not None:
                    self.summary.update(imported=self.imported, sync_seconds=round(self.sync_seconds, 3))
                if self.i2s is not None:
                    self.summary["input_to_state"] = asdict(self.i2s.stats)
        return EXIT_ON_CRASH_STATUS if self.opts.exit_on_crash and self.found_crash else 0

    def _setup_havoc(self) -> None:
        tokens = list(self.opts.tokens)
        session = getattr(self._active(), "session", None)
        if session is not None and session.autodict:
            auto = parse_autodict(session.autodict)
            tokens += auto
            self.monitor.event(f"the target offered {len(auto)} dictionary tokens")
        self.havoc = Havoc(self.opts.seed, tokens)

    def _active(self) -> Executor:
        return self.executor.active if isinstance(self.executor, AutoExecutor) else self.executor

    def _snapshot(self) -> SnapshotExecutor | None:
        ex = self._active()
        return ex if isinstance(ex, SnapshotExecutor) else None

    def _map_size(self) -> int:
        m = getattr(self._active(), "map", None)
        return m.map_size if m is not None else 0

    # ---- seeds and resume ----

    def _load_seeds(self, seeds: list[tuple[str, bytes]]) -> None:
        problems = []
        for name, data in seeds:
            self._tick()
            cal = self._calibrate(data)
            if cal.outcome is Outcome.OK:
                path = self.out.add_seed(data, name)
                self._add_entry(path, data, cal, depth=1, new_edges=True)
            elif cal.outcome is Outcome.CRASH:
                problems.append(f"{name} crashes")
                if self.objectives.new_crash(cal.first):
                    self._save_crash(cal.first, data, src=0, op=f"seed_{name}")
            elif cal.outcome is Outcome.TIMEOUT:
                problems.append(f"{name} times out")
            else:
                problems.append(f"{name}: {cal.first.detail or 'the run failed'}")
        for p in problems:
            self.monitor.event(f"seed {p}: not queued")
        if not self.corpus.entries:
            raise InputError(f"none of the {len(seeds)} seeds runs cleanly ({'; '.join(problems)}): the fuzzer needs "
                             "at least one input the target accepts")

    def _resume(self) -> None:
        """Rebuilds the campaign from the output directory: every queue entry is run
        again (coverage, speed), every saved crash too (so it is not saved twice)."""
        old = read_stats(self.out.path / "fuzzer_stats")
        self.execs_before = int(old.get("execs_done", 0))
        self.runtime_before = float(old.get("run_time", 0))
        entries = self.out.queue_entries()
        if not entries:
            raise InputError(f"nothing to resume in {self.out.path}: its queue is empty")
        for ident, path in entries:
            self._tick()
            data = path.read_bytes()
            cal = self._calibrate(data)
            entry = Entry(ident, path, len(data), cal.exec_us, cal.edges, depth=1, new_edges=True)
            self.corpus.add(entry)
            self.scheduler.update_top_rated(entry)
            if cal.outcome is not Outcome.OK:
                self.monitor.event(f"queue entry {path.name} now ends {cal.outcome.value}; kept")
        for path in sorted(self.out.crashes.iterdir()):
            if path.name.startswith("id:"):
                r = self._run(path.read_bytes(), keep_map=True)
                if r.outcome is Outcome.CRASH:
                    self.objectives.remember_crash(r)
                self._list_crash(path, r)
                self.status.crashes += 1
        self.status.hangs = sum(1 for p in self.out.hangs.iterdir() if p.name.startswith("id:"))
        self.monitor.event(f"resumed {len(entries)} queue entries, {self.status.crashes} crashes, "
                           f"{self.status.hangs} hangs from {self.out.path}")

    # ---- one entry's turn ----

    def _fuzz_one(self, entry: Entry) -> None:
        parent = self.corpus.data(entry)
        if self.i2s is not None and not entry.was_fuzzed:
            self._input_to_state(entry, parent)
        energy = self.scheduler.energy(entry)
        self.scheduler.mark_fuzzed(entry)
        done = 0
        while done < energy:
            count = self._within_runs(min(self.opts.batch, energy - done))
            splice = self._splice_partner(entry)
            snap = self._snapshot()
            if snap is not None:
                ran, notable = self._run_snapshot_batch(snap, parent, count, splice)
            else:
                ran, notable = count, self._run_one_by_one(parent, count, splice)
            done += ran
            for result, data in notable:
                self._handle(entry, result, data)
            self._tick()

    def _input_to_state(self, entry: Entry, data: bytes) -> None:
        """The comparison stage for an entry's first turn (cmp_stage.py): its
        colourisation runs and its candidates run on the plain target, and anything
        they find is kept as any mutant's find is."""
        base = self._run(data)
        if base.outcome is not Outcome.OK or base.map_hash is None:
            return

        def same_path(candidate: bytes) -> bool:
            r = self._run(candidate)
            if self._notable(r):
                self._handle(entry, r, candidate, op="colour")
            return r.outcome is Outcome.OK and r.map_hash == base.map_hash

        candidates, tokens = self.i2s.candidates(data, same_path)
        if tokens:
            self.havoc.add_tokens(tokens)
            self.monitor.event(f"comparisons gave {len(tokens)} new tokens ({len(self.havoc.tokens)} in all)")
        for start in range(0, len(candidates), self.opts.batch):
            chunk = candidates[start:start + self._within_runs(self.opts.batch)]
            results = self.executor.run_batch(chunk)
            self.execs += len(results)
            for r, candidate in zip(results, chunk):
                if self._notable(r):
                    self.i2s.stats.finds += 1
                    self._handle(entry, r, candidate, op="i2s")
            self._tick()

    def _within_runs(self, count: int) -> int:
        """count, cut to what --runs leaves; Stop when it leaves nothing."""
        if self.opts.max_runs is None:
            return count
        count = min(count, max(self.opts.max_runs - self.execs, 0))
        if count == 0:
            raise Stop(f"{self.opts.max_runs} runs done")
        return count

    def _splice_partner(self, entry: Entry) -> bytes | None:
        if len(self.corpus) < 2 or self.rng.integers(2):
            return None
        other = self.corpus[int(self.rng.integers(len(self.corpus)))]
        return None if other is entry else self.corpus.data(other)

    def _run_snapshot_batch(self, snap: SnapshotExecutor, parent: bytes, count: int,
                            splice: bytes | None) -> tuple[int, list[tuple[ExecResult, bytes]]]:
        """Runs a batch of mutants (as many as fit); returns how many ran and the notable ones."""
        self.havoc.fill_batch(snap.ctl, parent, count, splice)
        ran, notable = snap.run_whole_loaded_batch()
        self.execs += ran
        # read the flagged inputs back before anything else is loaded into the block
        return ran, [(r, snap.loaded_input(i)) for i, r in notable]

    def _run_one_by_one(self, parent: bytes, count: int, splice: bytes | None) -> list[tuple[ExecResult, bytes]]:
        notable = []
        for _ in range(count):
            data = self.havoc.mutate(parent, splice)
            r = self._run(data)
            if r.outcome is not Outcome.OK:
                r.coverage = self._active().map.snapshot()  # the map of the run that just ended
            if self._notable(r):
                notable.append((r, data))
        return notable

    def _notable(self, r: ExecResult) -> bool:
        """Worth a look: new coverage (the coverage feedback's call), or not an ok run."""
        return r.outcome is not Outcome.OK or self.coverage.is_interesting(r)

    def _run(self, data: bytes, keep_map: bool = False) -> ExecResult:
        self.execs += 1
        return self.executor.run(data, keep_map=keep_map)

    def _calibrate(self, data: bytes):
        cal = calibrate(self.executor, data)
        self.execs += cal.runs
        return cal

    # ---- what a notable input becomes ----

    def _handle(self, parent: Entry, r: ExecResult, data: bytes, op: str = "havoc") -> None:
        if r.outcome is Outcome.ERROR:
            self._engine_error(r)
            again = self._run(data)  # once more, in fork mode
            if again.outcome is not Outcome.OK:
                again.coverage = self._active().map.snapshot()
            # the runner classified the input before it gave up: its news stands
            again.novelty = larger(r.novelty, again.novelty)
            r = again
            if not self._notable(r):
                return
        if r.outcome is not Outcome.OK and r.coverage is None:
            r = self._run(data, keep_map=True)  # an objective is judged by its map
        if r.outcome is Outcome.OK:
            cal = self._calibrate(data)
            if cal.outcome is Outcome.OK:
                path = self.out.add_queue(data, src=parent.id, time_ms=self._ms(), execs=self._total_execs(),
                                          op=op, new_edges=r.novelty is Novelty.NEW_EDGE)
                self._add_entry(path, data, cal, parent.depth + 1, r.novelty is Novelty.NEW_EDGE)
                self.status.last_find = time.time()
            else:  # it crashed or hung when run again: an objective after all
                self._objective(parent, cal.first, data, op)
        else:
            self._objective(parent, r, data, op)

    def _objective(self, parent: Entry, r: ExecResult, data: bytes, op: str = "havoc") -> None:
        """A crash or timeout, with its map: saved when it is new (a timeout once confirmed)."""
        if r.outcome is Outcome.CRASH:
            if self.objectives.new_crash(r):
                self._save_crash(r, data, parent.id, op)
        elif r.outcome is Outcome.TIMEOUT:
            confirmed = self.objectives.confirm_hang(self.executor, data)
            self.execs += 1
            if confirmed.outcome is Outcome.TIMEOUT and self.objectives.new_hang(confirmed):
                path = self.out.add_hang(data, src=parent.id, time_ms=self._ms(), execs=self._total_execs(), op=op)
                self._published("hangs", path, data)
                self.status.hangs += 1
                self.monitor.event(f"new hang ({self.objectives.hang_timeout_ms} ms)")
            elif confirmed.outcome is Outcome.CRASH and self.objectives.new_crash(confirmed):
                self._save_crash(confirmed, data, parent.id, op)

    # ---- peers ----

    def _sync(self) -> None:
        """Imports what the peers found since the last look. Each entry runs once and is
        kept as a mutant would be: when it adds coverage here (afl-fuzz's rule), or is a
        crash or hang new here."""
        started = self._last_sync = time.monotonic()
        try:
            for batch in self.sync.pending():
                before = len(self.corpus)
                for start in range(0, len(batch.entries), self.opts.batch):
                    chunk = batch.entries[start:start + self.opts.batch]
                    results = self.executor.run_batch([data for _, data in chunk])
                    self.execs += len(results)
                    for (ident, data), r in zip(chunk, results):
                        if self._notable(r):
                            origin = Entry(ident, self.out.path, len(data), depth=0)
                            self._handle(origin, r, data, op=f"sync:{batch.peer}")
                self.imported += len(self.corpus) - before
                self.sync.done(batch)
        finally:
            self.sync_seconds += time.monotonic() - started

    def _published(self, kind: str, path: Path, data: bytes, edges: np.ndarray | None = None) -> None:
        """Tells the peers' link about a file just saved (a queue entry with its edges)."""
        if self.sync is not None:
            self.sync.published(kind, path, data, edges)

    def _engine_error(self, r: ExecResult) -> None:
        if isinstance(self.executor, AutoExecutor):
            if self._snapshot() is not None:
                self.executor.fall_back(r.detail)
            return  # the rest of the campaign, this input included, runs in fork mode
        raise RunnerError(f"the snapshot runner failed: {r.detail} (use --mode auto to fall back to fork mode)")

    def _add_entry(self, path: Path, data: bytes, cal, depth: int, new_edges: bool) -> Entry:
        ident = int(path.name[3:9])
        entry = Entry(ident, path, len(data), cal.exec_us, cal.edges, depth=depth, new_edges=new_edges,
                      handicap=self.scheduler.cycles_done, variable=int(cal.variable.size))
        self.corpus.add(entry)
        self.stability.add(cal.variable)
        self.scheduler.update_top_rated(entry)
        self._published("queue", path, data, entry.edges)
        return entry

    def _save_crash(self, r: ExecResult, data: bytes, src: int, op: str) -> None:
        path = self.out.add_crash(data, sig=r.signal or 0, src=src, time_ms=self._ms(), execs=self._total_execs(),
                                  op=op)
        self._published("crashes", path, data)
        self.status.crashes += 1
        self.status.last_crash = time.time()
        self.found_crash = True
        repro, what = self._list_crash(path, r)
        self.monitor.event(f"new crash ({what}): {repro}")
        if self.opts.exit_on_crash:
            raise Stop("a crash was found (--exit-on-crash)")

    def _list_crash(self, path: Path, r: ExecResult) -> tuple[str, str]:
        """A saved crash (this run's or a resumed one's) in the summary: how to reproduce it."""
        repro = shlex.join(self.opts.repro_prefix + ["-i", str(path), "--"] + self.opts.target_command)
        what = r.sanitizer or (f"signal {r.signal}" if r.signal else "")
        self.crash_repros.append((repro, what))
        self.saved_crashes.append({"path": str(path), "signal": r.signal, "sanitizer": r.sanitizer or None,
                                   "reproduce": repro})
        return repro, what

    # ---- figures ----

    def _ms(self) -> int:
        return int((self.runtime_before + time.monotonic() - self._started) * 1000)

    def _total_execs(self) -> int:
        return self.execs_before + self.execs

    def _tick(self) -> None:
        """Stops at a limit, and refreshes the monitor and the stats files."""
        now = time.monotonic()
        if self.opts.max_time is not None and now - self._started >= self.opts.max_time:
            raise Stop(f"--max-time {self.opts.max_time:g} s reached")
        if self.opts.max_runs is not None and self.execs >= self.opts.max_runs:
            raise Stop(f"{self.opts.max_runs} runs done")
        if self.sync is not None and now - self._last_sync >= SYNC_EVERY_S:
            self._sync()
        self.executor.trim_stderr()
        if now - self._last_refresh >= REFRESH_EVERY_S:  # the figures cost a pass over the map
            self._last_refresh = now
            self.monitor.update(self._refresh())
        if now - self._last_stats >= STATS_EVERY_S:
            self._flush()

    def _refresh(self) -> Status:
        st = self.status
        if st.mode == "snapshot" and self.executor.mode != "snapshot":  # an auto executor fell back
            self.monitor.event(f"snapshot mode cannot run this target exactly "
                               f"({getattr(self.executor, 'fallback_reason', '')}): fork mode from now on")
        st.mode = self.executor.mode
        st.backend = self.executor.backend if st.mode == "snapshot" else None
        now = time.monotonic()
        mark_t, mark_execs = self._rate_mark
        if now - mark_t >= 1.0:
            st.execs_per_sec = (self.execs - mark_execs) / (now - mark_t)
            self._rate_mark = (now, self.execs)
        elif st.execs_per_sec == 0 and now > self._started:
            st.execs_per_sec = self.execs / max(now - self._started, 1e-9)
        st.execs = self._total_execs()
        st.corpus = len(self.corpus)
        st.favored = self.scheduler.favored_count
        st.edges = self.virgin.edges_seen(st.map_size or self.virgin.size)
        st.total_crashes = self.objectives.total_crashes
        st.total_timeouts = self.objectives.total_timeouts
        st.stability = self.stability.percent(st.edges)
        st.cycles = self.scheduler.cycles_done
        return st

    def _stage_stats(self) -> dict:
        if self.i2s is None:
            return {}
        st = self.i2s.stats
        return {"cmplog_runs": st.cmplog_runs, "i2s_candidates": st.candidates, "i2s_finds": st.finds,
                "i2s_tokens": st.tokens}

    def _flush(self) -> None:
        """fuzzer_stats and a plot_data row, as afl-fuzz writes them."""
        self._last_stats = time.monotonic()
        st = self._refresh()
        elapsed = time.monotonic() - self._started
        stats = Stats(
            start_time=int(time.time() - self.runtime_before - elapsed),
            run_time=int(self.runtime_before + elapsed),
            cycles_done=self.scheduler.cycles_done,
            execs_done=st.execs,
            execs_per_sec=self.execs / elapsed if elapsed > 0 else 0.0,
            corpus_count=st.corpus,
            corpus_favored=st.favored,
            corpus_found=sum(1 for e in self.corpus.entries if e.depth > 1),
            corpus_imported=self.imported,
            max_depth=max((e.depth for e in self.corpus.entries), default=1),
            cur_item=self.scheduler.cursor if self.scheduler.cursor >= 0 else 0,
            pending_favs=self.scheduler.pending_favored,
            pending_total=sum(1 for e in self.corpus.entries if not e.was_fuzzed),
            stability=st.stability,
            bitmap_cvg=100.0 * st.edges / st.map_size if st.map_size else 0.0,
            saved_crashes=st.crashes,
            saved_hangs=st.hangs,
            last_find=int(st.last_find or 0),
            last_crash=int(st.last_crash or 0),
            exec_timeout=self.executor.timeout_ms,
            cpu_affinity=_pinned_cpu(),
            edges_found=st.edges,
            total_edges=st.map_size,
            **self._stage_stats(),
            sync_seconds=self.sync_seconds,
            target_mode=st.mode + (f" ({st.backend})" if st.backend else ""),
            command_line=shlex.join(self.opts.command_line),
        )
        self.out.write_stats(stats)
        self.out.append_plot(stats, st.map_size)


def _pinned_cpu() -> int:
    cpus = os.sched_getaffinity(0)
    return next(iter(cpus)) if len(cpus) == 1 else -1


def read_stats(path: Path) -> dict[str, str]:
    """An earlier run's fuzzer_stats as key -> value (empty when there is none)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out

"""afl-fuzz's output directory layout (-o OUT; one instance lives in OUT/NAME), so that
afl-fuzz's tools (afl-whatsup, afl-plot, afl-cmin, syncing) read ours.

Every file lands whole: entries are written to a temporary name in the instance
directory and renamed into place, and fuzzer_stats is replaced atomically, so that a
fuzzer killed at any moment leaves no half-written entry behind."""
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

PLOT_HEADER = ("# relative_time, cycles_done, cur_item, corpus_count, pending_total, pending_favs, map_size, "
               "saved_crashes, saved_hangs, max_depth, execs_per_sec, total_execs, edges_found")
_ID = re.compile(r"^id:(\d{6})")


@dataclass
class Stats:
    """What fuzzer_stats says, in afl-fuzz's words (afl-fuzz-stats.c)."""

    start_time: int = field(default_factory=lambda: int(time.time()))
    last_update: int = 0
    run_time: int = 0
    fuzzer_pid: int = field(default_factory=os.getpid)
    cycles_done: int = 0
    cycles_wo_finds: int = 0
    execs_done: int = 0
    execs_per_sec: float = 0.0
    corpus_count: int = 0
    corpus_favored: int = 0
    corpus_found: int = 0
    corpus_imported: int = 0
    max_depth: int = 1
    cur_item: int = 0
    pending_favs: int = 0
    pending_total: int = 0
    stability: float = 100.0
    bitmap_cvg: float = 0.0
    saved_crashes: int = 0
    saved_hangs: int = 0
    last_find: int = 0
    last_crash: int = 0
    last_hang: int = 0
    execs_since_crash: int = 0
    exec_timeout: int = 1000
    cpu_affinity: int = -1      # the CPU this instance is pinned to (-1: not pinned)
    edges_found: int = 0
    total_edges: int = 65536
    cmplog_runs: int = 0        # the comparison stage (forkserver fuzz -c): runs of the cmplog build,
    i2s_candidates: int = 0     # replacements it tried,
    i2s_finds: int = 0          # those that were new coverage or crashes,
    i2s_tokens: int = 0         # and dictionary tokens it learnt
    sync_seconds: float = 0.0   # time spent importing peers' entries (-M/-S, -j)
    afl_banner: str = "forkserver"
    afl_version: str = "forkserver"
    target_mode: str = "default"
    command_line: str = ""

    def text(self) -> str:
        lines = []
        for key, value in self.__dict__.items():
            if key in ("stability", "bitmap_cvg"):
                value = f"{value:.2f}%"
            elif isinstance(value, float):
                value = f"{value:.2f}"
            lines.append(f"{key:<18}: {value}")
        return "\n".join(lines) + "\n"


class OutputDir:
    """One fuzzer instance's directory: queue/, crashes/, hangs/, .synced/, fuzzer_stats,
    plot_data, cmdline. Use OutputDir.open()."""

    def __init__(self, path: Path):
        self.path = path
        self.queue, self.crashes, self.hangs = path / "queue", path / "crashes", path / "hangs"
        self.next_ids = {d: self._next_id(d) for d in (self.queue, self.crashes, self.hangs)}

    @classmethod
    def open(cls, out: str | os.PathLike, name: str = "default", resume: bool = False) -> "OutputDir":
        """OUT/NAME, made fresh; an instance already there (one with a queue) is resumed
        only when asked (afl-fuzz's `-i -`, or --resume), and refused otherwise, with
        nothing touched. Ids always carry on after the entries there, so nothing is
        overwritten."""
        path = Path(out) / name
        # a run that queued nothing (its seeds crashed) is started afresh; ids carry on
        existing = _has_entries(path / "queue")
        if existing and not resume:
            raise UsageError(f"{path} holds an earlier run: resume it with `-i -` or --resume, "
                             "or choose another -o")
        if resume and not existing:
            raise UsageError(f"nothing to resume in {path}: it holds no queue")
        try:
            for sub in ("queue", "crashes", "hangs", ".synced"):
                (path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the output directory {path}: {exc.strerror}") from None
        for leftover in path.glob(".tmp-*"):  # an entry being written when a run was killed
            leftover.unlink(missing_ok=True)
        return cls(path)

    @staticmethod
    def _next_id(directory: Path) -> int:
        ids = [int(m.group(1)) for p in directory.iterdir() if (m := _ID.match(p.name))] if directory.is_dir() else []
        return max(ids, default=-1) + 1

    def _save(self, directory: Path, name: str, data: bytes) -> Path:
        final = write_whole(directory / name, data, self.path)
        self.next_ids[directory] += 1
        return final

    def add_seed(self, data: bytes, orig: str) -> Path:
        i = self.next_ids[self.queue]
        return self._save(self.queue, f"id:{i:06d},time:0,execs:0,orig:{_safe(orig)}", data)

    def add_queue(self, data: bytes, src: int, time_ms: int, execs: int, op: str, new_edges: bool) -> Path:
        i = self.next_ids[self.queue]
        name = f"id:{i:06d},{_origin(src, time_ms, execs, op)}" + (",+cov" if new_edges else "")
        return self._save(self.queue, name, data)

    def add_crash(self, data: bytes, sig: int, src: int, time_ms: int, execs: int, op: str) -> Path:
        i = self.next_ids[self.crashes]
        name = f"id:{i:06d},sig:{sig:02d},{_origin(src, time_ms, execs, op)}"
        return self._save(self.crashes, name, data)

    def add_hang(self, data: bytes, src: int, time_ms: int, execs: int, op: str) -> Path:
        i = self.next_ids[self.hangs]
        return self._save(self.hangs, f"id:{i:06d},{_origin(src, time_ms, execs, op)}", data)

    def queue_entries(self) -> list[tuple[int, Path]]:
        """(id, path) of every queue entry, in id order: a resumed run starts from these."""
        out = [(int(m.group(1)), p) for p in self.queue.iterdir() if (m := _ID.match(p.name)) and p.is_file()]
        return sorted(out)

    def write_stats(self, stats: Stats) -> None:
        stats.last_update = int(time.time())
        tmp = self.path / ".fuzzer_stats.tmp"
        tmp.write_text(stats.text())
        os.replace(tmp, self.path / "fuzzer_stats")

    def append_plot(self, stats: Stats, map_size: int) -> None:
        plot = self.path / "plot_data"
        new = not plot.exists()
        with open(plot, "a") as f:
            if new:
                f.write(PLOT_HEADER + "\n")
            f.write(f"{stats.run_time}, {stats.cycles_done}, {stats.cur_item}, {stats.corpus_count}, "
                    f"{stats.pending_total}, {stats.pending_favs}, {map_size}, {stats.saved_crashes}, "
                    f"{stats.saved_hangs}, {stats.max_depth}, {stats.execs_per_sec:.2f}, {stats.execs_done}, "
                    f"{stats.edges_found}\n")

    def write_cmdline(self, argv: list[str]) -> None:
        (self.path / "cmdline").write_text("\n".join(argv) + "\n")


def write_whole(final: Path, data: bytes, tmp_dir: Path | None = None) -> Path:
    """Writes final so that no reader sees it half-written: a temporary name in tmp_dir
    (default: final's directory; a dot-name that syncing and resuming skip), then a rename."""
    tmp = (tmp_dir or final.parent) / f".tmp-{os.getpid()}-{threading.get_ident()}"  # writers in threads too
    tmp.write_bytes(data)
    os.replace(tmp, final)
    return final


def _has_entries(directory: Path) -> bool:
    """A directory that holds saved entries."""
    try:
        return any(_ID.match(p.name) for p in directory.iterdir())
    except OSError:
        return False


def _origin(src: int, time_ms: int, execs: int, op: str) -> str:
    """Where an entry came from, in afl-fuzz's words: `src:ID,...,op:OP` for a mutant of
    our entry ID, `sync:PEER,src:ID,...` for PEER's entry ID imported (op "sync:PEER")."""
    if op.startswith("sync:"):
        return f"sync:{_safe(op[5:])},src:{src:06d},time:{time_ms},execs:{execs}"
    return f"src:{src:06d},time:{time_ms},execs:{execs},op:{_safe(op)}"


def _safe(text: str) -> str:
    """A name part without the characters afl-fuzz's names use as separators."""
    return re.sub(r"[/,:\s]", "_", text)[:64]

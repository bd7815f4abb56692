"""The monitor: what a campaign shows while it runs and when it stops.

On a terminal, a live panel (rich); otherwise one timestamped line every few seconds,
for logs. Events (a new crash, with the command that reproduces it) are printed as they
happen in both, and a summary at the end."""
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Status:
    """A campaign's figures at one moment."""

    mode: str = "?"
    backend: str | None = None
    started: float = field(default_factory=time.time)
    execs: int = 0
    execs_per_sec: float = 0.0
    corpus: int = 0
    favored: int = 0
    edges: int = 0
    map_size: int = 0
    crashes: int = 0          # saved (unique)
    hangs: int = 0            # saved (unique)
    total_crashes: int = 0
    total_timeouts: int = 0
    stability: float = 100.0
    cycles: int = 0
    last_find: float | None = None
    last_crash: float | None = None
    workers: list = field(default_factory=list)  # -j N: (name, cpu, Status or None) per worker

    @property
    def run_time(self) -> float:
        return time.time() - self.started


def ago(stamp: float | None) -> str:
    if stamp is None:
        return "none yet"
    s = int(time.time() - stamp)
    return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s ago" if s >= 3600 else \
        f"{s // 60}m {s % 60:02d}s ago" if s >= 60 else f"{s}s ago"


def duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _engine(st: Status) -> str:
    return st.mode + (f" ({st.backend})" if st.backend else "")


class Monitor:
    """Plain lines: `update` prints at most one line every `interval` seconds."""

    def __init__(self, stream=None, interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last = 0.0

    def start(self, status: Status) -> None:
        self._print(f"{len(status.workers)} workers starting" if status.workers else
                    f"fuzzing in {_engine(status)} mode")

    def _print(self, text: str) -> None:
        print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}", file=self.stream, flush=True)

    def line(self, st: Status) -> str:
        workers = (f"  [{len([w for w in st.workers if w[2] is not None])}/{len(st.workers)} workers]"
                   if st.workers else "")
        return (f"{duration(st.run_time)}{workers}  execs {st.execs} ({st.execs_per_sec:.0f}/s)  corpus {st.corpus} "
                f"({st.favored} fav)  edges {st.edges}  crashes {st.crashes}  hangs {st.hangs}  "
                f"stability {st.stability:.2f}%  last find {ago(st.last_find)}")

    def update(self, status: Status, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self._print(self.line(status))

    def event(self, text: str) -> None:
        self._print(text)

    def stop(self, status: Status, reason: str, crashes: list[tuple[str, str]]) -> None:
        self.update(status, force=True)
        for line in summary(status, reason, crashes):
            print(line, file=self.stream, flush=True)


class LiveMonitor(Monitor):
    """The live panel on a terminal."""

    def __init__(self, stream=None):
        super().__init__(stream, interval=0.25)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)

    def start(self, status: Status) -> None:
        self.live.start()
        self.live.update(self._panel(status))

    def _panel(self, st: Status):
        from rich.panel import Panel
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold cyan", justify="right")
        t.add_column()
        t.add_column(style="bold cyan", justify="right")
        t.add_column()
        t.add_row("run time", duration(st.run_time), "mode", _engine(st))
        t.add_row("exec/s", f"{st.execs_per_sec:,.0f}", "total execs", f"{st.execs:,}")
        t.add_row("corpus", f"{st.corpus} ({st.favored} favoured)", "cycles", str(st.cycles))
        t.add_row("edges", f"{st.edges}" + (f" / {st.map_size}" if st.map_size else ""),
                  "stability", f"{st.stability:.2f}%")
        t.add_row("crashes", f"{st.crashes} saved ({st.total_crashes} total)",
                  "hangs", f"{st.hangs} saved ({st.total_timeouts} timeouts)")
        t.add_row("last find", ago(st.last_find), "last crash", ago(st.last_crash))
        if not st.workers:
            return Panel(t, title="forkserver fuzz", border_style="blue", expand=False)
        from rich.console import Group

        w = Table(box=None, padding=(0, 1), header_style="bold cyan")
        for column in ("worker", "cpu", "exec/s", "execs", "corpus", "edges", "crashes", "hangs"):
            w.add_column(column, justify="left" if column == "worker" else "right", no_wrap=True)
        for name, cpu, ws in st.workers:
            if ws is None:
                w.add_row(f"{name} (starting)", str(cpu if cpu is not None else "-"), "", "", "", "", "", "")
            else:
                w.add_row(name, str(cpu if cpu is not None else "-"), f"{ws.execs_per_sec:,.0f}", f"{ws.execs:,}",
                          str(ws.corpus), str(ws.edges), str(ws.crashes), str(ws.hangs))
        return Panel(Group(t, w), title=f"forkserver fuzz -j {len(st.workers)}", border_style="blue", expand=False)

    def update(self, status: Status, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.live.update(self._panel(status))

    def event(self, text: str) -> None:
        self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}", markup=False, highlight=False)

    def stop(self, status: Status, reason: str, crashes: list[tuple[str, str]]) -> None:
        self.live.update(self._panel(status))
        self.live.stop()
        for line in summary(status, reason, crashes):
            print(line, file=self.stream, flush=True)


def summary(st: Status, reason: str, crashes: list[tuple[str, str]]) -> list[str]:
    """The final words: why it stopped, the totals, and how to reproduce each crash."""
    lines = [f"stopped ({reason}) after {duration(st.run_time)}: {st.execs} execs, {st.execs_per_sec:.0f}/s, "
             f"{_engine(st)}",
             f"corpus {st.corpus} entries, {st.edges} edges, stability {st.stability:.2f}%",
             f"crashes {st.crashes} saved ({st.total_crashes} crashing runs), hangs {st.hangs} saved "
             f"({st.total_timeouts} timeouts)"]
    if crashes:
        lines.append("reproduce:")
        lines += [f"  {cmd}" + (f"    # {what}" if what else "") for cmd, what in crashes]
    return lines


def make_monitor(stream=None, live: bool | None = None) -> Monitor:
    """The live panel when the stream is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if live is None:
        live = stream.isatty()
    return LiveMonitor(stream) if live else Monitor(stream)

"""Which CPU the orchestrator and its targets run on: one policy for run, showmap, bench
and parallel workers. It works from the CPUs this process may use (os.sched_getaffinity:
containers and taskset restrict it), never from the machine's CPU count.

Pinning matters on small VMs: a pipe round trip between two processes costs ~46 us when
they sit on different CPUs and ~5 us on one CPU (DESIGN.md, "Where the time goes")."""
import os
import time

from .config import SETTINGS
from .errors import UsageError


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _idle_ticks() -> dict[int, int]:
    ticks = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks[int(name[3:])] = int(fields[3]) + int(fields[4])  # idle + iowait
    return ticks


def idlest_cpu(sample_s: float = 0.05) -> int:
    """The allowed CPU with the most idle time over sample_s (a busy neighbour pinned to
    a CPU would halve our numbers there)."""
    allowed = allowed_cpus()
    if len(allowed) == 1:
        return allowed[0]
    try:
        before = _idle_ticks()
        time.sleep(sample_s)
        after = _idle_ticks()
    except OSError:
        return allowed[0]
    return max(allowed, key=lambda c: (after.get(c, 0) - before.get(c, 0), -c))


def choose_cpu(spec: str | int | None, sample_s: float = 0.05) -> int | None:
    """The CPU to pin to for a --cpu value: a number (one of the allowed CPUs), "auto"
    (the idlest allowed CPU) or "none" (no pinning). FORKSERVER_NO_AFFINITY=1 means none.

    Raises:
        UsageError: a number that is not an allowed CPU, or another word.
    """
    if spec is None or spec == "auto":
        return None if SETTINGS.no_affinity else idlest_cpu(sample_s)
    if spec == "none":
        return None
    try:
        cpu = int(spec)
    except (TypeError, ValueError):
        raise UsageError(f"--cpu takes a CPU number, auto or none, not {spec!r}") from None
    allowed = allowed_cpus()
    if cpu not in allowed:
        raise UsageError(f"--cpu {cpu}: this process may run on CPUs {_ranges(allowed)} only")
    return None if SETTINGS.no_affinity else cpu


def worker_cpus(n: int) -> list[int | None]:
    """CPUs for n parallel workers: distinct allowed CPUs while they last, then round robin."""
    if SETTINGS.no_affinity:
        return [None] * n
    allowed = allowed_cpus()
    return [allowed[i % len(allowed)] for i in range(n)]


def pin(cpu: int | None) -> None:
    """Pins this process (and the targets it starts afterwards) to one CPU."""
    if cpu is not None and not SETTINGS.no_affinity:
        os.sched_setaffinity(0, {cpu})


def _ranges(cpus: list[int]) -> str:
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)

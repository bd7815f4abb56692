"""Facts about the machine and the processes a benchmark measures: memory, CPU model, the
source version, CPU pinning for the duration of a run."""
import datetime
import os
import platform
from pathlib import Path

from .. import __version__
from ..errors import UsageError


def checkout_root() -> Path:
    """The directory that holds harnesses/ and corpora/ (the checkout this package runs from)."""
    return Path(__file__).resolve().parents[2]


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
    from ..config import SETTINGS

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
        from ..executors.base import pin_to_cpu

        pin_to_cpu(self.cpu)
        return self

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.saved)

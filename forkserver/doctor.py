"""What works on this machine: kernel, snapshot backends (probed for real), compilers, afl-fuzz."""
import platform
import re
import shutil
import subprocess

from . import aflpp
from .native import ffi, lib

BACKEND_IDS = {
    "pagemap-scan": lib.FS_BACKEND_PAGEMAP_SCAN,
    "soft-dirty": lib.FS_BACKEND_SOFT_DIRTY,
    "mprotect": lib.FS_BACKEND_MPROTECT,
    "full-copy": lib.FS_BACKEND_FULL_COPY,
}


def probe_backend(name: str) -> tuple[bool, str]:
    reason = ffi.new("char[512]")
    ok = lib.fs_host_probe_backend(BACKEND_IDS[name], reason, 512) == 0
    return ok, ffi.string(reason).decode()


def available_backends() -> list[str]:
    return [name for name in BACKEND_IDS if probe_backend(name)[0]]


def _version(cmd: list[str], pattern: str) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def report() -> dict:
    backends = {}
    for name in BACKEND_IDS:
        ok, reason = probe_backend(name)
        backends[name] = {"available": ok, "reason": reason}
    try:
        with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
            unpriv = f.read().strip()
    except OSError:
        unpriv = None
    afl = afl_fuzz_version()
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "backends": backends,
        "auto_backend": next((n for n in ("pagemap-scan", "soft-dirty", "mprotect") if backends[n]["available"]),
                             "full-copy"),
        "unprivileged_userfaultfd": unpriv,
        "compilers": {
            "clang": _version(["clang", "--version"], r"version ([\d.]+)"),
            "gcc": _version(["gcc", "--version"], r"\) ([\d.]+)"),
        },
        "afl_fuzz": afl,
        "afl_fuzz_works": aflpp.compatibility(afl),
    }


def afl_fuzz_version() -> str | None:
    """The afl-fuzz on PATH: its release ("4.04c"), "unknown", or None if there is none."""
    return _version(["afl-fuzz", "-h"], r"afl-fuzz\+\+([\w.]+)")

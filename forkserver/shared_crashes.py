"""Crash de-duplication across the instances of one sync directory.

Each instance keeps its own crash map (objectives.py); a crash new to it is saved only
if it is new to all of them too. What all instances have saved lives in OUT/.crashes:
a virgin map of the simplified crashing traces (AFL's rule for unique crashes) and the
sanitizer summaries seen, both updated under an exclusive lock. Crashes are rare, so
the lock costs nothing that shows; the file keeps working when instances are
restarted, and afl-fuzz skips dot-names when it syncs."""
import fcntl
import mmap
import os
from pathlib import Path

import numpy as np

from .native import ffi, lib


class SharedCrashes:
    def __init__(self, root: Path):
        self.dir = Path(root) / ".crashes"  # made at the first crash: a failed start leaves nothing
        self.map_path = self.dir / "virgin"
        self.summaries_path = self.dir / "summaries"
        self.lock_path = self.dir / "lock"

    def claim(self, simplified: np.ndarray, sanitizer: str | None) -> bool:
        """True when no instance saved this crash yet; it is then recorded as saved."""
        simplified = np.ascontiguousarray(simplified, dtype=np.uint8)
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            new_path = self._update_map(simplified)
            new_bug = bool(sanitizer) and sanitizer not in self._summaries()
            if new_bug:
                with open(self.summaries_path, "a") as f:
                    f.write(sanitizer.replace("\n", " ") + "\n")
            return new_path or new_bug

    def _update_map(self, simplified: np.ndarray) -> bool:
        fd = os.open(self.map_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size < simplified.size:  # a larger map: what is not covered yet is all virgin
                os.lseek(fd, size, os.SEEK_SET)
                os.write(fd, b"\xff" * (simplified.size - size))
            with mmap.mmap(fd, simplified.size) as m:
                virgin = np.frombuffer(m, dtype=np.uint8)
                try:
                    return _new_bits(simplified, virgin)
                finally:
                    del virgin  # the mmap cannot close while a view of it lives
        finally:
            os.close(fd)

    def _summaries(self) -> set[str]:
        try:
            return set(self.summaries_path.read_text().splitlines())
        except OSError:
            return set()


class CrashUniqueness:
    """The same rule in one process's memory: the Ray coordinator's, which every worker asks."""

    def __init__(self):
        self.virgin = np.zeros(0, dtype=np.uint8)
        self.summaries: set[str] = set()

    def claim_hits(self, hits: np.ndarray, size: int, sanitizer: str | None) -> bool:
        """claim() of the simplified trace whose hit edges are hits."""
        simplified = np.ones(size, dtype=np.uint8)
        simplified[0] = 0
        simplified[np.asarray(hits, dtype=np.int64)] = 128
        return self.claim(simplified, sanitizer)

    def claim(self, simplified: np.ndarray, sanitizer: str | None) -> bool:
        simplified = np.ascontiguousarray(simplified, dtype=np.uint8)
        if self.virgin.size < simplified.size:
            self.virgin = np.concatenate([self.virgin, np.full(simplified.size - self.virgin.size, 0xFF, np.uint8)])
        new_path = _new_bits(simplified, self.virgin[:simplified.size])
        new_bug = bool(sanitizer) and sanitizer not in self.summaries
        if sanitizer:
            self.summaries.add(sanitizer)
        return new_path or new_bug


def _new_bits(simplified: np.ndarray, virgin: np.ndarray) -> bool:
    """AFL's has_new_bits of a simplified trace, clearing what it reached in virgin."""
    return lib.fs_host_has_new_bits(ffi.from_buffer(simplified), ffi.from_buffer(virgin), simplified.size, 1) != 0

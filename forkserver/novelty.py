"""Per-input novelty: AFL's has-new-bits against a virgin map.

The virgin map lives in its own shared memory segment, so that a snapshot runner can
update it input by input inside a batch (no restore touches shared memory) and the
orchestrator can update it for the inputs it runs itself: fork, exec and persistent
runs, and the input a snapshot runner died in. Both sides run the same C code
(csrc/common/fs_novelty.h) with the same bucket table."""
import enum

import numpy as np

from .native import ffi, lib
from .shm import SharedMemory


class Novelty(enum.IntEnum):
    """What an input's coverage added: AFL's has_new_bits return value."""

    NONE = 0
    NEW_BUCKET = 1  # a new hit-count bucket of an edge already seen
    NEW_EDGE = 2    # an edge no earlier input hit


def novelty_from_flags(flags: int) -> Novelty:
    """The novelty a snapshot runner reported in an fs_result's flags."""
    if flags & lib.FS_RESULT_NEW_EDGE:
        return Novelty.NEW_EDGE
    if flags & lib.FS_RESULT_NEW_BUCKET:
        return Novelty.NEW_BUCKET
    return Novelty.NONE


def larger(a: Novelty | None, b: Novelty | None) -> Novelty | None:
    """The greater of two classifications of one input (None: not classified)."""
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


class VirginMap:
    """What every input so far has reached: a set bit is a bucket no input reached yet.
    Byte 0 (the runtime's "I ran" byte) starts cleared: it is not an edge."""

    def __init__(self, size: int = lib.FS_OPT_MAX_MAPSIZE):
        self.shm = SharedMemory(size)
        self.array = self.shm.array
        self.reset()

    @property
    def id(self) -> int:
        return self.shm.id

    @property
    def size(self) -> int:
        return self.shm.size

    def ensure_size(self, size: int) -> None:
        """Grows to cover a map of size bytes, keeping what was reached (a new segment:
        give the new id to a runner started after this)."""
        if size <= self.size:
            return
        grown = SharedMemory(size)
        grown.array[:] = 0xFF
        grown.array[:self.size] = self.array
        self.shm.close()
        self.shm = grown
        self.array = grown.array

    def reset(self) -> None:
        self.array[:] = 0xFF
        self.array[0] = 0

    def update(self, counts: np.ndarray) -> Novelty:
        """has-new-bits of one run's raw hit counts (the live map or a copy); the virgin
        map loses what they reached."""
        counts = np.ascontiguousarray(counts, dtype=np.uint8)
        self.ensure_size(counts.size)
        n = lib.fs_host_has_new_bits(ffi.from_buffer(counts), ffi.from_buffer(self.array), counts.size, 1)
        return Novelty(n)

    def check(self, counts: np.ndarray) -> Novelty:
        """As update(), leaving the virgin map as it is."""
        counts = np.ascontiguousarray(counts, dtype=np.uint8)
        self.ensure_size(counts.size)
        return Novelty(lib.fs_host_has_new_bits(ffi.from_buffer(counts), ffi.from_buffer(self.array), counts.size, 0))

    def edges_seen(self, map_size: int) -> int:
        """Map bytes some input has hit (byte 0 left out)."""
        return int(np.count_nonzero(self.array[1:map_size] != 0xFF))

    def close(self) -> None:
        self.shm.close()

"""Observers read what a run left behind: MapObserver reads the AFL-style coverage map."""
import zlib

import numpy as np

from .native import ffi, lib


def _bucket_table() -> np.ndarray:
    """AFL's hit-count buckets, read from the C table the runtime hashes with."""
    values, out = bytes(range(256)), ffi.new("unsigned char[256]")
    lib.fs_host_classify(values, 256, out)
    return np.frombuffer(ffi.buffer(out), dtype=np.uint8).copy()


# hit count -> bucket: 0, 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128-255 -> 0, 1, 2, 4, ..., 128
BUCKETS = _bucket_table()


class MapObserver:
    """A view of the first map_size bytes of a coverage map in shared memory."""

    def __init__(self, array: np.ndarray, map_size: int):
        self.raw = array
        self.map_size = map_size
        self.view = array[:map_size]

    def resize(self, map_size: int) -> None:
        self.map_size = map_size
        self.view = self.raw[:map_size]

    def clear(self) -> None:
        self.view[:] = 0

    def snapshot(self) -> "CoverageMap":
        """Copies the current map out of shared memory."""
        return CoverageMap(self.view.copy())

    def summary(self) -> tuple[int, int]:
        """(edges, hash) of the current map, without keeping a copy of it."""
        return summarize(self.view)


def summarize(counts: np.ndarray) -> tuple[int, int]:
    """(edges, hash) of a map. Edges leave out index 0, the runtime's "I ran" byte. The
    hash is zlib's crc32 of the hit indices (u32 LE) then their buckets; the runtime
    computes the same value in C for batched runs."""
    idx = np.flatnonzero(counts)
    crc = zlib.crc32(idx.astype("<u4").tobytes())
    edges = int(idx.size - (idx.size > 0 and idx[0] == 0))
    return edges, zlib.crc32(BUCKETS[counts[idx]].tobytes(), crc)


class CoverageMap:
    """One run's coverage: raw hit counts plus the derived views fuzzers use."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts

    @property
    def edge_ids(self) -> np.ndarray:
        """Indices of hit map bytes. Index 0 is the runtime's "I ran" byte, not an edge."""
        idx = np.flatnonzero(self.counts)
        return idx[idx > 0]

    @property
    def edges(self) -> int:
        return int(self.edge_ids.size)

    def buckets(self) -> np.ndarray:
        return BUCKETS[self.counts]

    @property
    def hash(self) -> int:
        """See summarize()."""
        return summarize(self.counts)[1]

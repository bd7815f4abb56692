"""The corpus: the queue entries a campaign keeps, on disk in OUT/NAME/queue, with what
the fuzzer learnt about each (its edges, its speed, how often it was fuzzed).

Only metadata stays in memory; an entry's bytes are read from its file when it is
fuzzed, so a large queue costs no more memory than its edge lists."""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Entry:
    """One queue entry (AFL's struct queue_entry)."""

    id: int
    path: Path
    size: int
    exec_us: float = 0.0
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))  # map indices it hits
    depth: int = 1              # generations from a seed
    favored: bool = False
    was_fuzzed: bool = False
    fuzz_count: int = 0         # times chosen
    handicap: int = 0           # queue cycles that passed before it was found
    new_edges: bool = False     # it reached an edge no earlier entry did (+cov)
    variable: int = 0           # its edges whose hit counts changed between identical runs

    @property
    def fav_factor(self) -> float:
        """AFL's ranking for the top-rated cull: small and fast wins."""
        return self.exec_us * max(self.size, 1)

    def read(self) -> bytes:
        return self.path.read_bytes()


class Corpus:
    """The entries, in id order (ids are the queue file ids)."""

    def __init__(self):
        self.entries: list[Entry] = []
        self._cache: dict[int, bytes] = {}
        self._total_exec_us = 0.0  # running sums: the scheduler asks for averages at every turn
        self._total_edges = 0

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        self._total_exec_us += entry.exec_us
        self._total_edges += int(entry.edges.size)
        return entry

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Entry:
        return self.entries[i]

    def data(self, entry: Entry) -> bytes:
        """The entry's bytes; the last few read are kept."""
        data = self._cache.get(entry.id)
        if data is None:
            data = entry.read()
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[entry.id] = data
        return data

    @property
    def average_exec_us(self) -> float:
        return self._total_exec_us / len(self.entries) if self.entries else 0.0

    @property
    def average_edges(self) -> float:
        return self._total_edges / len(self.entries) if self.entries else 0.0

"""The scheduler: which queue entry to fuzz next, and for how long (AFL's queue cycle).

- Top-rated cull: for every edge, the entry that reaches it at the least cost
  (exec time x size) is its top-rated entry; a greedy pass over the edges picks a small
  set of entries that together reach them all, the favoured ones.
- Skips: while favoured entries wait to be fuzzed, others are mostly skipped (99%);
  non-favoured entries are skipped 75-95% of the time (AFL's SKIP_* odds).
- Energy (AFL's calculate_score): the number of havoc mutants an entry gets grows for
  fast entries, entries with many edges, entries found late and deep entries.

Every random choice comes from one seeded generator: a seed gives one schedule."""
import numpy as np

from .corpus import Corpus, Entry

HAVOC_CYCLES = 256        # mutants per entry at a score of 100
HAVOC_CYCLES_INIT = 1024  # the first time an entry is fuzzed
HAVOC_MIN = 16
MAX_SCORE = 1600          # AFL's HAVOC_MAX_MULT * 100
SKIP_TO_NEW_PROB, SKIP_NFAV_NEW_PROB, SKIP_NFAV_OLD_PROB = 99, 75, 95


class Scheduler:
    def __init__(self, corpus: Corpus, rng: np.random.Generator):
        self.corpus = corpus
        self.rng = rng
        self.top_rated: dict[int, Entry] = {}
        self.dirty = False      # top_rated changed since the last cull
        self.cursor = -1        # the entry fuzzed last
        self.cycles_done = 0
        self.pending_favored = 0

    def update_top_rated(self, entry: Entry) -> None:
        """The entry becomes top-rated for each of its edges it reaches more cheaply
        than the entry rated there now (AFL's update_bitmap_score)."""
        for edge in entry.edges.tolist():
            best = self.top_rated.get(edge)
            if best is None or entry.fav_factor <= best.fav_factor:  # a tie goes to the newer entry, as in AFL
                self.top_rated[edge] = entry
                self.dirty = True

    def cull(self) -> None:
        """Marks the favoured entries: walking the edges in order, the top-rated entry of
        each edge not covered yet is favoured, and covers all its edges (AFL's
        cull_queue)."""
        if not self.dirty:
            return
        self.dirty = False
        covered: set[int] = set()
        for entry in self.corpus.entries:
            entry.favored = False
        for edge in sorted(self.top_rated):
            if edge in covered:
                continue
            best = self.top_rated[edge]
            best.favored = True
            covered.update(best.edges.tolist())
        self.pending_favored = sum(1 for e in self.corpus.entries if e.favored and not e.was_fuzzed)

    @property
    def favored_count(self) -> int:
        return sum(1 for e in self.corpus.entries if e.favored)

    def _skip(self, entry: Entry) -> bool:
        roll = int(self.rng.integers(100))
        if self.pending_favored:
            return (entry.was_fuzzed or not entry.favored) and roll < SKIP_TO_NEW_PROB
        if not entry.favored and len(self.corpus) > 10:
            if self.cycles_done > 0 and not entry.was_fuzzed:
                return roll < SKIP_NFAV_NEW_PROB
            return roll < SKIP_NFAV_OLD_PROB
        return False

    def next(self) -> Entry:
        """The next entry to fuzz, walking the queue in cycles."""
        if not self.corpus.entries:
            raise ValueError("the corpus is empty")
        while True:
            self.cursor += 1
            if self.cursor >= len(self.corpus):
                self.cursor = 0
                self.cycles_done += 1
            self.cull()  # when a new entry changed the top-rated ones (AFL culls before each entry too)
            entry = self.corpus[self.cursor]
            if not self._skip(entry):
                return entry

    def mark_fuzzed(self, entry: Entry) -> None:
        entry.fuzz_count += 1
        if not entry.was_fuzzed:
            entry.was_fuzzed = True
            if entry.favored and self.pending_favored:
                self.pending_favored -= 1

    def energy(self, entry: Entry) -> int:
        """Havoc mutants for one turn of entry (AFL's calculate_score)."""
        score = 100.0
        avg_us, avg_edges = self.corpus.average_exec_us, self.corpus.average_edges
        us = entry.exec_us
        if avg_us > 0:
            if us * 0.1 > avg_us:
                score = 10
            elif us * 0.25 > avg_us:
                score = 25
            elif us * 0.5 > avg_us:
                score = 50
            elif us * 0.75 > avg_us:
                score = 75
            elif us * 4 < avg_us:
                score = 300
            elif us * 3 < avg_us:
                score = 200
            elif us * 2 < avg_us:
                score = 150
        edges = entry.edges.size
        if avg_edges > 0:
            if edges * 0.3 > avg_edges:
                score *= 3
            elif edges * 0.5 > avg_edges:
                score *= 2
            elif edges * 0.75 > avg_edges:
                score *= 1.5
            elif edges * 3 < avg_edges:
                score *= 0.25
            elif edges * 2 < avg_edges:
                score *= 0.5
            elif edges * 1.5 < avg_edges:
                score *= 0.75
        if entry.handicap >= 4:
            score *= 4
            entry.handicap -= 4
        elif entry.handicap:
            score *= 2
            entry.handicap -= 1
        score *= 1 if entry.depth <= 3 else 2 if entry.depth <= 7 else 3 if entry.depth <= 13 else \
            4 if entry.depth <= 25 else 5
        score = min(score, MAX_SCORE)
        # a longer first turn: AFL's cycles after its deterministic stages, which we do not run
        cycles = HAVOC_CYCLES if entry.was_fuzzed else HAVOC_CYCLES_INIT
        # slow targets get fewer mutants per turn (AFL's havoc_div)
        div = 10 if avg_us > 50_000 else 5 if avg_us > 20_000 else 2 if avg_us > 10_000 else 1
        return max(HAVOC_MIN, int(cycles * score / div / 100))

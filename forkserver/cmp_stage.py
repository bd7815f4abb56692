"""The fuzzer's input-to-state stage (AFL++'s CMPLOG/RedQueen): once per queue entry,
before its havoc turns.

1. Colourise: replace as many of the entry's bytes as possible with random ones while
   the plain target still takes the same path (same coverage hash). Where an operand
   changes with them, it came from those bytes.
2. Log the comparisons of the entry and of its colourised copy with the cmplog build.
3. For each comparison, put the other operand (in the form the program read it) where
   the input holds one side (input_to_state); the colourised log narrows the places.
4. The constant sides of string comparisons become dictionary tokens.

The candidates run on the plain target, in batches, as any mutant does."""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .cmplog import CmpLog
from .executors import Executor
from .input_to_state import IntComparison, bytes_candidates, int_candidates, tokens

MAX_COLOUR_RUNS = 512        # runs spent colourising one entry
MAX_CANDIDATES = 4096        # per entry
MAX_INPUT = 64 * 1024        # larger entries are not colourised (the runs grow with the length)
MAX_TOKEN_LEN = 32


@dataclass
class StageStats:
    entries: int = 0          # entries analysed
    cmplog_runs: int = 0      # runs of the cmplog build
    colour_runs: int = 0      # runs of the plain target while colourising
    candidates: int = 0       # replacements tried
    finds: int = 0            # of which new coverage or a new crash (counted by the fuzzer)
    tokens: int = 0           # dictionary tokens learnt


class InputToState:
    """The stage, with the cmplog build's executor and its log segment (both its own)."""

    def __init__(self, executor: Executor, log: CmpLog, seed: int = 0):
        self.executor = executor
        self.log = log
        self.rng = np.random.default_rng(seed ^ 0x6D6F6C6F)
        self.stats = StageStats()
        self.known_tokens: set[bytes] = set()

    def __enter__(self):
        self.executor.start()
        self._started = True
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Stops the cmplog build and frees what the stage holds; safe to call again."""
        if getattr(self, "_started", False):
            self.executor.close()
            self._started = False
        self.log.close()
        self.executor.target.cleanup()

    def logged(self, data: bytes) -> dict:
        """The comparisons one run of data makes, by place (CmpLog.records)."""
        self.log.begin()
        try:
            self.executor.run(data)
        finally:
            self.log.end()
        self.stats.cmplog_runs += 1
        return self.log.records()

    def colourise(self, data: bytes, same_path: Callable[[bytes], bool]) -> bytes:
        """data with as many bytes randomised as keep the path, by halving the ranges
        that change it (AFL++'s colorization)."""
        if not data or len(data) > MAX_INPUT:
            return data
        buf = bytearray(data)
        ranges = [(0, len(data))]
        runs = 0
        while ranges and runs < MAX_COLOUR_RUNS:
            ranges.sort(key=lambda r: r[0] - r[1])  # the largest first
            start, end = ranges.pop(0)
            trial = bytearray(buf)
            shift = self.rng.integers(1, 256, size=end - start, dtype=np.uint16)
            trial[start:end] = ((np.frombuffer(data[start:end], dtype=np.uint8) + shift) % 256).astype(np.uint8).tobytes()
            runs += 1
            if same_path(bytes(trial)):
                buf = trial
            elif end - start > 1:
                mid = (start + end) // 2
                ranges += [(start, mid), (mid, end)]
        self.stats.colour_runs += runs
        return bytes(buf)

    def candidates(self, data: bytes, same_path: Callable[[bytes], bool]) -> tuple[list[bytes], list[bytes]]:
        """The replacements to try for one entry, and the new tokens its string
        comparisons offer."""
        self.stats.entries += 1
        colourised = self.colourise(data, same_path)
        original = self.logged(data)
        coloured = self.logged(colourised) if colourised != data else {}
        out: list[bytes] = []
        seen = {data}
        new_tokens: list[bytes] = []
        for place, cmp in original.items():
            other = coloured.get(place)
            colour = (colourised, other) if type(other) is type(cmp) else None
            if isinstance(cmp, IntComparison):
                found = int_candidates(data, cmp, colour)
            else:
                found = bytes_candidates(data, cmp, colour)
                for token in tokens(cmp, data):
                    if 1 < len(token) <= MAX_TOKEN_LEN and token not in self.known_tokens:
                        self.known_tokens.add(token)
                        new_tokens.append(token)
            for candidate in found:
                if candidate not in seen:
                    seen.add(candidate)
                    out.append(candidate)
            if len(out) >= MAX_CANDIDATES:
                break
        out = out[:MAX_CANDIDATES]
        self.stats.candidates += len(out)
        self.stats.tokens += len(new_tokens)
        return out, new_tokens

"""Sharing finds between fuzzer instances through afl-fuzz's sync directory (-o OUT):

- every instance keeps its queue in OUT/NAME/queue, entries written whole;
- OUT/NAME/.synced/PEER holds the id of the next PEER entry to import (afl-fuzz's u32);
- a main instance (-M) marks itself with OUT/NAME/is_main_node.

As in afl-fuzz, a main instance imports from every peer and a secondary (-S) from main
instances only, so that finds go secondary -> main -> the other secondaries. Also as in
afl-fuzz, a secondary that finds peers but no main elects itself main until one
appears. afl-fuzz instances read our queues and we read theirs; nothing else passes
between them, so a campaign can mix both fuzzers in one directory."""
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .outdir import write_whole

SYNC_EVERY_S = 5.0            # afl-fuzz syncs once a queue cycle; we also sync on a clock
MAX_FILE = 1 << 20            # afl-fuzz's MAX_FILE: larger entries are not imported
MAIN_MARKER = "is_main_node"
_ID = re.compile(r"^id:(\d{6})")


@dataclass
class Batch:
    """A peer's entries not imported yet, oldest first, and the id to record once they ran."""

    peer: str
    entries: list[tuple[int, bytes]]   # (id, bytes)
    next_id: int


class SyncDir:
    """This instance's view of OUT: which peers to import from, and what is new in them."""

    def __init__(self, root: Path, name: str, main: bool):
        self.root = Path(root)
        self.name = name
        self.main = main
        self.elected = False  # a secondary standing in as main while the directory has none
        self.synced = self.root / name / ".synced"
        self.synced.mkdir(parents=True, exist_ok=True)
        self.marker = self.root / name / MAIN_MARKER
        if main:
            self.marker.touch()
        else:
            self.marker.unlink(missing_ok=True)  # a directory that was a main before, resumed as a secondary

    def peers(self) -> list[str]:
        """The other instances to import from (afl-fuzz's rule: a secondary only from mains)."""
        try:
            names = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []
        names = [n for n in names if not n.startswith(".") and n != self.name]
        if self.main:
            return names
        mains = [n for n in names if (self.root / n / MAIN_MARKER).exists()]
        self._elect(bool(names), mains)
        return names if self.elected else mains

    def _elect(self, has_peers: bool, mains: list[str]) -> None:
        """afl-fuzz's election: a secondary with peers but no main marks itself main. It
        steps down for a main whose name sorts before its own, so that of two that stood
        in at once one stays, with no flapping (afl-fuzz's stand-ins step down for any
        main); beside a later-named main it stays one, and imports from everyone."""
        if self.elected and any(n < self.name for n in mains):
            self.elected = False
            self.marker.unlink(missing_ok=True)
        elif not self.elected and has_peers and not mains:
            self.elected = True
            self.marker.touch()

    def pending(self) -> Iterator[Batch]:
        """Each peer's entries from the recorded id on. Record them with done() once
        they ran: an instance stopped in between imports them again, none is lost."""
        for peer in self.peers():
            start = self._next_id(peer)
            queue = self.root / peer / "queue"
            try:
                found = sorted((int(m.group(1)), p) for p in queue.iterdir() if (m := _ID.match(p.name)))
            except OSError:
                continue
            entries, next_id = [], start
            for ident, path in found:
                if ident < start:
                    continue
                next_id = ident + 1
                try:
                    if not path.is_file() or not 0 < path.stat().st_size <= MAX_FILE:
                        continue  # afl-fuzz skips empty and oversized entries too
                    entries.append((ident, path.read_bytes()))
                except OSError:
                    continue  # the peer is resuming or cleaning up: skipped, as afl-fuzz does
            if next_id > start:
                yield Batch(peer, entries, next_id)

    def done(self, batch: Batch) -> None:
        write_whole(self.synced / batch.peer, struct.pack("<I", batch.next_id))

    def published(self, kind: str, path: Path, data: bytes, edges=None) -> None:
        """Entries land in OUT/NAME already, where the peers look."""

    def _next_id(self, peer: str) -> int:
        try:
            raw = (self.synced / peer).read_bytes()
        except OSError:
            return 0
        return struct.unpack("<I", raw[:4])[0] if len(raw) >= 4 else 0


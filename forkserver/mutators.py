"""Mutators: AFL++'s havoc stage (in C, csrc/host/fs_mutate.c) and dictionaries.

Havoc writes a mutant into a buffer, or a whole batch of them straight into a snapshot
executor's control block, with no Python per byte. It is deterministic: the same seed
gives the same mutants, in the same order, on every machine."""
import os
import re
from pathlib import Path

from .errors import InputError
from .native import ffi, lib

MAX_LEN = 1 << 20
MAX_STACK_POW = 7  # AFL++'s HAVOC_STACK_POW2: 2 to 128 stacked mutations


class Tokens:
    """Dictionary tokens packed for C (struct fs_tokens)."""

    def __init__(self, tokens: list[bytes]):
        self.tokens = list(dict.fromkeys(t for t in tokens if t))  # unique, in order
        blob = b"".join(self.tokens)
        self._data = ffi.new("unsigned char[]", max(1, len(blob)))
        ffi.memmove(self._data, blob, len(blob))
        offsets, pos = [], 0
        for t in self.tokens:
            offsets.append(pos)
            pos += len(t)
        self._offsets = ffi.new("unsigned int[]", offsets or [0])
        self._lens = ffi.new("unsigned int[]", [len(t) for t in self.tokens] or [0])
        self.c = ffi.new("struct fs_tokens *", {"data": self._data, "offsets": self._offsets, "lens": self._lens,
                                                "count": len(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)


class Havoc:
    """AFL++'s havoc mutator, seeded: Havoc(seed).mutate(data) -> a mutant."""

    def __init__(self, seed: int, tokens: list[bytes] = (), max_len: int = MAX_LEN,
                 max_stack_pow: int = MAX_STACK_POW):
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.rng = ffi.new("unsigned long long *", seed & (2**64 - 1))
        self.tokens = Tokens(list(tokens))
        self.max_len = max_len
        self.max_stack_pow = max_stack_pow
        self._out = ffi.new("unsigned char[]", max_len)

    def add_tokens(self, tokens: list[bytes]) -> None:
        """More dictionary tokens (the comparison stage learns them as it goes)."""
        self.tokens = Tokens(self.tokens.tokens + list(tokens))

    def _splice(self, splice: bytes | None):
        return (ffi.from_buffer(splice), len(splice)) if splice else (ffi.NULL, 0)

    def mutate(self, data: bytes, splice: bytes | None = None) -> bytes:
        """One mutant of data; splice, another input, is a source of blocks."""
        sp, sp_len = self._splice(splice)
        n = lib.fs_havoc(ffi.from_buffer(data) if data else ffi.NULL, len(data), self._out, self.max_len, sp, sp_len,
                         self.tokens.c if len(self.tokens) else ffi.NULL, self.rng, self.max_stack_pow)
        return bytes(ffi.buffer(self._out, n))

    def fill_batch(self, ctl, parent: bytes, count: int, splice: bytes | None = None) -> int:
        """count mutants of parent, written as one batch into a control block
        (SnapshotExecutor.ctl); returns how many fit."""
        sp, sp_len = self._splice(splice)
        return lib.fs_havoc_batch(ctl, ffi.from_buffer(parent) if parent else ffi.NULL, len(parent), sp, sp_len,
                                  self.tokens.c if len(self.tokens) else ffi.NULL, self.rng, count, self.max_len,
                                  self.max_stack_pow)


# ---- dictionaries ----

# `name@level="value"`, `name="value"` or `"value"` (AFL's -x files; libFuzzer's -dict
# files are the same syntax without levels)
_ENTRY = re.compile(r'^(?:[A-Za-z_][\w.-]*)?(?:@(\d+))?\s*=?\s*"(.*)"$')


def _unescape(text: str, where: str) -> bytes:
    out, i = bytearray(), 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            if ord(c) < 0x20 or ord(c) > 0x7E:
                raise InputError(f"{where}: only printable ASCII and escapes may appear in a token")
            out.append(ord(c))
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in ("\\", '"'):
            out.append(ord(nxt))
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            raise InputError(f"{where}: bad escape {text[i:i + 4]!r} (use \\\\, \\\" or \\xNN)")
    return bytes(out)


def parse_dictionary(text: str, name: str = "dictionary", max_level: int | None = None) -> list[bytes]:
    """Tokens of an AFL or libFuzzer dictionary. Entries above max_level (AFL's
    `-x file@level`) are left out."""
    tokens = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ENTRY.match(line)
        if not m:
            raise InputError(f"{name}:{number}: not a dictionary entry: {line[:60]!r} "
                             '(expected name="value" or "value")')
        if max_level is not None and m.group(1) and int(m.group(1)) > max_level:
            continue
        token = _unescape(m.group(2), f"{name}:{number}")
        if not token:
            raise InputError(f"{name}:{number}: empty token")
        tokens.append(token)
    return tokens


def load_dictionary(path: str | os.PathLike) -> list[bytes]:
    """`-x PATH`: a dictionary file (AFL or libFuzzer syntax; `file@N` keeps levels up
    to N), or a directory whose files are one token each, as afl-fuzz takes them."""
    text_path, level = str(path), None
    m = re.fullmatch(r"(.*)@(\d+)", text_path)
    if m and not Path(text_path).exists():
        text_path, level = m.group(1), int(m.group(2))
    p = Path(text_path)
    if p.is_dir():
        tokens = []
        for entry in sorted(p.iterdir()):
            if entry.is_file():
                data = entry.read_bytes()
                if data:
                    tokens.append(data[:128])  # afl-fuzz's MAX_DICT_FILE
        if not tokens:
            raise InputError(f"dictionary directory {p} holds no tokens")
        return tokens
    try:
        text = p.read_text(encoding="latin-1")
    except FileNotFoundError:
        raise InputError(f"no such dictionary: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read dictionary {p}: {exc.strerror}") from None
    tokens = parse_dictionary(text, str(p), level)
    if not tokens:
        raise InputError(f"dictionary {p} holds no tokens")
    return tokens


def parse_autodict(blob: bytes) -> list[bytes]:
    """The tokens of the dictionary an AFL++ build hands over in its handshake (an LTO
    build's autodictionary): `[u8 len][bytes]` entries. A truncated last entry is left
    out."""
    tokens, i = [], 0
    while i < len(blob):
        n = blob[i]
        token = blob[i + 1:i + 1 + n]
        if n and len(token) == n:
            tokens.append(token)
        i += 1 + n
    return tokens

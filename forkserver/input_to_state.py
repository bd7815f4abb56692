"""Input-to-state correspondence: where a logged comparison's operand appears in the
input, and the input with the other operand put there instead (AFL++'s RedQueen idea).

A comparison `x == 0x4d5a9000` whose x was read straight from the input shows the input
bytes of one operand: find them, in whatever form the program read them (little or big
endian at the comparison's width, or as ASCII decimal or hex text), and write the other
operand there in the same form; for an ordering comparison the neighbours of the other
operand too (x < K is decided at K-1, K and K+1). String comparisons (memcmp, strcmp and
kin) give their bytes directly, and their constant side is a dictionary token.

Pure functions of bytes and logged operands: the fuzzer's comparison stage feeds them
what the runtime logged for one input.
"""
from dataclasses import dataclass
from typing import Iterator

WIDTHS = (1, 2, 4, 8)
MAX_CANDIDATES = 64        # per comparison: an operand found everywhere is not informative
MIN_TEXT_DIGITS = 2        # a one-digit number matches half of any text input


@dataclass(frozen=True)
class IntComparison:
    left: int
    right: int
    size: int  # bytes: 1, 2, 4 or 8

    def __post_init__(self):
        if self.size not in WIDTHS:
            raise ValueError(f"a comparison is 1, 2, 4 or 8 bytes wide, not {self.size}")


@dataclass(frozen=True)
class BytesComparison:
    left: bytes
    right: bytes


def encodings(value: int, size: int) -> list[tuple[str, bytes]]:
    """The forms in which a program may have read value from its input, by name: the
    binary ones at the comparison's width, then the textual ones (decimal, signed
    decimal for a negative value of that width, lower and upper case hex)."""
    mask = (1 << (8 * size)) - 1
    value &= mask
    forms = [("le", value.to_bytes(size, "little"))]
    if size > 1:
        forms.append(("be", value.to_bytes(size, "big")))
    text = [("dec", str(value))]
    if value >> (8 * size - 1):
        text.append(("sdec", str(value - (1 << (8 * size)))))
    text += [("hex", format(value, "x")), ("HEX", format(value, "X"))]
    forms += [(name, s.encode()) for name, s in text if len(s.lstrip("-")) >= MIN_TEXT_DIGITS]
    return forms


def encode(value: int, size: int, form: str) -> bytes | None:
    """value in one of encodings()'s forms; None when it has no such form (a text form
    too short to be told apart, or signed decimal of a value that is not negative)."""
    return dict(encodings(value, size)).get(form)


def _occurrences(data: bytes, needle: bytes) -> Iterator[int]:
    start = data.find(needle)
    while start >= 0:
        yield start
        start = data.find(needle, start + 1)


def _targets(other: int, size: int) -> list[int]:
    mask = (1 << (8 * size)) - 1
    return [other & mask, (other + 1) & mask, (other - 1) & mask]


def _distinct(data: bytes, splices: Iterator[tuple[int, bytes, bytes]]) -> list[bytes]:
    """data with each (offset, old bytes, new bytes) splice applied on its own: in order,
    without duplicates or data itself, at most MAX_CANDIDATES."""
    out: list[bytes] = []
    seen = {data}
    for at, old, new in splices:
        candidate = data[:at] + new + data[at + len(old):]
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
            if len(out) >= MAX_CANDIDATES:
                break
    return out


def _int_splices(data: bytes, cmp: IntComparison) -> Iterator[tuple[int, bytes, bytes]]:
    for pattern, other in ((cmp.left, cmp.right), (cmp.right, cmp.left)):
        if (pattern ^ other) & ((1 << (8 * cmp.size)) - 1) == 0:
            continue  # equal operands: nothing to change
        for form, needle in encodings(pattern, cmp.size):
            for at in _occurrences(data, needle):
                for target in _targets(other, cmp.size):
                    repl = encode(target, cmp.size, form)
                    if repl is not None:
                        yield at, needle, repl


def int_candidates(data: bytes, cmp: IntComparison) -> list[bytes]:
    """Inputs with one side's bytes, where they appear in data, replaced by the other
    side (and its neighbours) in the same form. Deterministic order, no duplicates, data
    itself never among them, at most MAX_CANDIDATES."""
    return _distinct(data, _int_splices(data, cmp))


def bytes_candidates(data: bytes, cmp: BytesComparison) -> list[bytes]:
    """Inputs with one side of a string comparison, where it appears in data, replaced
    by the other side (over the same length: memcmp compares that many bytes)."""
    return _distinct(data, ((at, pattern, other)
                            for pattern, other in ((cmp.left, cmp.right), (cmp.right, cmp.left))
                            if pattern and pattern != other
                            for at in _occurrences(data, pattern)))


def tokens(cmp: BytesComparison, data: bytes) -> list[bytes]:
    """The sides of a string comparison that are not the input's own bytes: tokens for
    the run's dictionary (the side found in the input is what the input already says)."""
    return [side for side in (cmp.left, cmp.right) if side and side not in data]

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


def _follows_colour(data_at: bytes, colour_at: bytes, coloured: bytes | None) -> bool:
    """Whether bytes found in the input are where the operand came from: in the
    colourised input the same place holds the colourised run's operand. Without a
    colourised run (None), or when the colourised operand has another length (text
    forms), it cannot be told, and the place is kept."""
    if coloured is None or len(coloured) != len(data_at):
        return True
    return colour_at == coloured


def _int_splices(data: bytes, cmp: IntComparison,
                 colour: "tuple[bytes, IntComparison] | None") -> Iterator[tuple[int, bytes, bytes]]:
    mask = (1 << (8 * cmp.size)) - 1
    sides = [(cmp.left, cmp.right, colour[1].left if colour else None),
             (cmp.right, cmp.left, colour[1].right if colour else None)]
    for pattern, other, coloured in sides:
        if (pattern ^ other) & mask == 0:
            continue  # equal operands: nothing to change
        if coloured is not None and (coloured ^ pattern) & mask == 0:
            continue  # colourising the input did not change it: this side is not the input's
        for form, needle in encodings(pattern, cmp.size):
            expected = encode(coloured, cmp.size, form) if coloured is not None else None
            for at in _occurrences(data, needle):
                if colour and not _follows_colour(needle, colour[0][at:at + len(needle)], expected):
                    continue
                for target in _targets(other, cmp.size):
                    repl = encode(target, cmp.size, form)
                    if repl is not None:
                        yield at, needle, repl


def int_candidates(data: bytes, cmp: IntComparison,
                   colour: "tuple[bytes, IntComparison] | None" = None) -> list[bytes]:
    """Inputs with one side's bytes, where they appear in data, replaced by the other
    side (and its neighbours) in the same form. Deterministic order, no duplicates, data
    itself never among them, at most MAX_CANDIDATES.

    colour: a colourised copy of data (same length, same path, other bytes) and the same
    comparison as the colourised run logged it. A side it left unchanged is not taken
    from the input, and a place where the colourised input does not hold the colourised
    operand is not where the program read it: both are skipped."""
    return _distinct(data, _int_splices(data, cmp, colour))


def bytes_candidates(data: bytes, cmp: BytesComparison,
                     colour: "tuple[bytes, BytesComparison] | None" = None) -> list[bytes]:
    """Inputs with one side of a string comparison, where it appears in data, replaced
    by the other side (over the same length: memcmp compares that many bytes). colour
    narrows the places as for int_candidates."""
    sides = [(cmp.left, cmp.right, colour[1].left if colour else None),
             (cmp.right, cmp.left, colour[1].right if colour else None)]

    def splices():
        for pattern, other, coloured in sides:
            if not pattern or pattern == other or (coloured is not None and coloured == pattern):
                continue
            for at in _occurrences(data, pattern):
                if colour and not _follows_colour(pattern, colour[0][at:at + len(pattern)], coloured):
                    continue
                yield at, pattern, other

    return _distinct(data, splices())


def tokens(cmp: BytesComparison, data: bytes) -> list[bytes]:
    """The sides of a string comparison that are not the input's own bytes: tokens for
    the run's dictionary (the side found in the input is what the input already says)."""
    return [side for side in (cmp.left, cmp.right) if side and side not in data]

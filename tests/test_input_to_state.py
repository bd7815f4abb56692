"""Input-to-state: finding a comparison's operand in the input and putting the other
operand there, in every form a program may read it (endianness, widths, ASCII decimal
and hex), as hand-made cases and as properties."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forkserver.input_to_state import (MAX_CANDIDATES, BytesComparison, IntComparison, bytes_candidates, encode,
                                       encodings, int_candidates, tokens)


def test_a_little_endian_magic_is_found_and_replaced():
    data = b"head" + (0x11223344).to_bytes(4, "little") + b"tail"
    got = int_candidates(data, IntComparison(0x11223344, 0x4D5A9000, 4))
    assert got[0] == b"head" + (0x4D5A9000).to_bytes(4, "little") + b"tail"


def test_a_big_endian_magic_is_replaced_big_endian():
    data = b"\x00\x01" + (0x1122334455667788).to_bytes(8, "big")
    got = int_candidates(data, IntComparison(0x1122334455667788, 0xCAFEBABEDEADBEEF, 8))
    assert b"\x00\x01" + (0xCAFEBABEDEADBEEF).to_bytes(8, "big") in got
    assert b"\x00\x01" + (0xCAFEBABEDEADBEEF).to_bytes(8, "little") not in got, "the form found is the form written"


def test_either_side_may_be_the_input():
    data = b"xx\x05\x00yy"
    got = int_candidates(data, IntComparison(0x1234, 0x0005, 2))
    assert b"xx\x34\x12yy" in got


def test_neighbours_of_the_other_operand_are_tried():
    data = b"\x10\x00\x00\x00"
    got = int_candidates(data, IntComparison(0x10, 1000, 4))
    for target in (999, 1000, 1001):
        assert target.to_bytes(4, "little") in got


def test_widths_wrap_their_neighbours():
    got = int_candidates(b"\x07", IntComparison(7, 0xFF, 1))
    assert set(got) == {b"\xff", b"\x00", b"\xfe"}


@pytest.mark.parametrize("text, value, target, expected", [
    (b"len=1234;", 1234, 98765, b"len=98765;"),
    (b"id=ff00", 0xFF00, 0xABCD, b"id=abcd"),
    (b"ID=FF00", 0xFF00, 0xABCD, b"ID=ABCD"),
    (b"n=-25", 0xFFFFFFE7, 0xFFFFFF9C, b"n=-100"),
])
def test_ascii_forms(text, value, target, expected):
    assert expected in int_candidates(text, IntComparison(value, target, 4))


def test_one_digit_text_is_not_a_form():
    assert [name for name, _ in encodings(7, 4)] == ["le", "be"]
    assert encode(7, 4, "dec") is None
    assert encode(0xFFFFFFFB, 4, "sdec") is None, "one digit"
    assert encode(0xFFFFFFF0, 4, "sdec") == b"-16"


def test_equal_operands_change_nothing():
    assert int_candidates(b"\x01\x02\x03\x04", IntComparison(0x04030201, 0x04030201, 4)) == []


def test_candidates_are_capped_and_distinct():
    data = b"\x00" * 1000
    got = int_candidates(data, IntComparison(0, 0x41, 1))
    assert len(got) == MAX_CANDIDATES and len(set(got)) == len(got) and data not in got


def test_strings_are_replaced_and_tokens_taken():
    data = b"GET /index BEGXN"
    cmp = BytesComparison(b"BEGXN", b"BEGIN")
    assert bytes_candidates(data, cmp) == [b"GET /index BEGIN"]
    assert tokens(cmp, data) == [b"BEGIN"]


def test_a_string_not_in_the_input_still_gives_its_token():
    cmp = BytesComparison(b"abc", b"magic_word")
    assert bytes_candidates(b"zzz", cmp) == []
    assert tokens(cmp, b"zzz") == [b"abc", b"magic_word"]


widths = st.sampled_from([1, 2, 4, 8])


@settings(max_examples=300, deadline=None)
@given(st.data(), widths, st.binary(max_size=40), st.binary(max_size=40))
def test_every_binary_form_round_trips(data, size, before, after):
    """An operand written into an input in any binary form is found, and the other
    operand lands at the same offset in the same form."""
    bits = 8 * size
    value = data.draw(st.integers(0, (1 << bits) - 1))
    other = data.draw(st.integers(0, (1 << bits) - 1).filter(lambda o: o != value))
    form = data.draw(st.sampled_from(["le", "be"] if size > 1 else ["le"]))
    needle = encode(value, size, form)
    got = int_candidates(before + needle + after, IntComparison(value, other, size))
    expected = before + encode(other, size, form) + after
    assert expected in got or len(got) == MAX_CANDIDATES


@settings(max_examples=200, deadline=None)
@given(st.integers(10, 2**32 - 1), st.integers(10, 2**32 - 1), st.sampled_from(["dec", "hex", "HEX"]))
def test_every_text_form_round_trips(value, other, form):
    needle, repl = encode(value, 4, form), encode(other, 4, form)
    if value == other or needle is None or repl is None:
        return
    data = b"key " + needle + b"\n"
    assert b"key " + repl + b"\n" in int_candidates(data, IntComparison(value, other, 4))


# ---- colourised runs narrow the places ----

def test_colour_keeps_only_the_place_the_program_read():
    """The operand's bytes appear twice, but colourising changed only the second copy's
    bytes and the operand with them: only that place is replaced."""
    magic = (0x11223344).to_bytes(4, "little")
    data = magic + b"----" + magic
    colourised = magic + b"----" + (0x55667788).to_bytes(4, "little")
    cmp, coloured = IntComparison(0x11223344, 0x4D5A9000, 4), IntComparison(0x55667788, 0x4D5A9000, 4)
    got = int_candidates(data, cmp, (colourised, coloured))
    assert got and all(c[:8] == magic + b"----" for c in got)
    assert magic + b"----" + (0x4D5A9000).to_bytes(4, "little") in got
    assert len(int_candidates(data, cmp)) > len(got), "without colour, both places are tried"


def test_colour_drops_a_side_the_input_does_not_set():
    """The constant side happens to appear in the input; colourising left it as it was,
    so it is not the input's and nothing is put in its place."""
    constant = (0x4D5A9000).to_bytes(4, "little")
    data = constant + b"\x01\x00\x00\x00"
    colourised = constant + b"\x09\x00\x00\x00"
    cmp, coloured = IntComparison(1, 0x4D5A9000, 4), IntComparison(9, 0x4D5A9000, 4)
    got = int_candidates(data, cmp, (colourised, coloured))
    assert got == [constant + constant, constant + (0x4D5A9001).to_bytes(4, "little"),
                   constant + (0x4D5A8FFF).to_bytes(4, "little")]


def test_colour_narrows_string_comparisons_too():
    data = b"GO!go GO!"
    colourised = b"GO!go xy?"
    got = bytes_candidates(data, BytesComparison(b"GO!", b"FZ!"), (colourised, BytesComparison(b"xy?", b"FZ!")))
    assert got == [b"GO!go FZ!"]


def test_colourise_randomises_every_byte_the_path_does_not_need():
    from forkserver.cmp_stage import InputToState

    data = bytes(range(64))
    stage = InputToState(executor=None, log=None, seed=5)
    needed = {3, 4, 40}
    colourised = stage.colourise(data, lambda d: all(d[i] == data[i] for i in needed))
    assert len(colourised) == len(data)
    assert all((colourised[i] == data[i]) == (i in needed) for i in range(len(data)))
    assert stage.stats.colour_runs <= 64

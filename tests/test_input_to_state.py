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

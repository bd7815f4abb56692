"""Havoc (csrc/host/fs_mutate.c) and dictionaries (forkserver/mutators.py).

- Determinism: a seed gives the same mutants, in the same order; another seed others.
- Properties (hypothesis): a mutant is never empty nor longer than max_len, whatever the
  input, splice partner, tokens and seed.
- Each kind of mutation shows: tokens get inserted, splicing copies blocks of the other
  input, inputs grow and shrink.
- A batch of mutants written into a snapshot executor's control block runs as one batch.
- Dictionaries in AFL's and libFuzzer's syntax, levels, token directories, and errors that
  name the line.
"""
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import HARNESS_DIR
from forkserver.errors import InputError
from forkserver.executors import SnapshotExecutor
from forkserver.mutators import Havoc, load_dictionary, parse_autodict, parse_dictionary
from forkserver.target import Target


def mutants(seed: int, data: bytes, n: int, **kw) -> list[bytes]:
    h = Havoc(seed, **kw)
    return [h.mutate(data) for _ in range(n)]


def test_same_seed_same_mutants():
    data = b"The quick brown fox jumps over the lazy dog" * 3
    assert mutants(42, data, 200) == mutants(42, data, 200)
    assert mutants(42, data, 200) != mutants(43, data, 200)
    tokens = [b"BEGIN", b"\x00\xff"]
    a, b = Havoc(7, tokens=tokens), Havoc(7, tokens=tokens)
    assert [a.mutate(data, splice=b"other input") for _ in range(100)] == \
        [b.mutate(data, splice=b"other input") for _ in range(100)]


# sha256 of the 3,000 mutants below: the generator and every mutation are pinned, so a
# seed replays the same campaign on every machine. A deliberate change to havoc changes
# this digest: record the new one.
GOLDEN = "01622c263d106b78c83710b8bca1fd25d282c2c82a902536ae8a6a2299fc43f3"


def test_mutants_are_the_same_on_every_machine():
    h = Havoc(20261130, tokens=[b"BEGIN", b"\xff\x00"])
    d = hashlib.sha256()
    data = bytes(range(200))
    for i in range(3000):
        d.update(h.mutate(data, splice=b"splice partner " * 3 if i % 3 == 0 else None))
    assert d.hexdigest() == GOLDEN


def test_mutants_differ_and_vary_in_length():
    data = bytes(range(64))
    out = mutants(1, data, 2000)
    assert len(set(out)) > 1900, "havoc rarely repeats itself"
    lengths = {len(m) for m in out}
    assert min(lengths) < len(data) < max(lengths), "blocks are deleted and inserted"
    assert sum(m == data for m in out) < 20


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), splice=st.one_of(st.none(), st.binary(min_size=1, max_size=100)),
       tokens=st.lists(st.binary(min_size=1, max_size=20), max_size=5), seed=st.integers(0, 2**64 - 1),
       max_len=st.integers(1, 400))
def test_mutant_length_bounds(data, splice, tokens, seed, max_len):
    h = Havoc(seed, tokens=tokens, max_len=max_len)
    for _ in range(5):
        m = h.mutate(data, splice=splice)
        assert 1 <= len(m) <= max_len


def test_tokens_are_inserted():
    out = mutants(5, b"a" * 40, 3000, tokens=[b"MAGICWORD"])
    assert sum(b"MAGICWORD" in m for m in out) > 100
    assert not any(b"MAGICWORD" in m for m in mutants(5, b"a" * 40, 3000))


def test_splicing_copies_blocks_of_the_other_input():
    h = Havoc(9)
    partner = b"ZYXWVUTSRQPONMLKJIHGFEDCBA" * 4
    out = [h.mutate(b"0" * 80, splice=partner) for _ in range(3000)]
    assert sum(b"QPONMLK" in m for m in out) > 20


def test_a_batch_of_mutants_runs_in_one_wake_up():
    target = Target.from_command([str(HARNESS_DIR / "maze.c")])
    try:
        with SnapshotExecutor(target, 2000, cpu=None) as ex:
            h = Havoc(3, tokens=[b"MAZE!", b"EXIT"])
            n = h.fill_batch(ex.ctl, b"MAZE!LEFT", 500)
            assert n == 500 and ex.ctl.batch_count == 500
            results = ex.run_loaded_batch()
            assert len(results) == 500 and ex.wakeups == 1
            # the same mutants from Python, one by one, give the same results
            again = Havoc(3, tokens=[b"MAZE!", b"EXIT"])
            want = [ex.run(again.mutate(b"MAZE!LEFT")) for _ in range(500)]
            assert [(r.outcome, r.map_hash) for r in results] == [(r.outcome, r.map_hash) for r in want]
    finally:
        target.cleanup()


# ---- dictionaries ----

AFL_DICT = r'''
# comment
header_png="\x89PNG"
keyword_if="if"
quoted="say \"hi\"\\"
"bare"
lvl@2="deep"
'''


def test_afl_dictionary():
    assert parse_dictionary(AFL_DICT) == [b"\x89PNG", b"if", b'say "hi"\\', b"bare", b"deep"]
    assert parse_dictionary(AFL_DICT, max_level=1) == [b"\x89PNG", b"if", b'say "hi"\\', b"bare"]


def test_libfuzzer_dictionary():
    text = '# libFuzzer\nkw1="blah"\nkw2="\\xF7\\xF8"\n"foo\\x0Abar"\n'
    assert parse_dictionary(text) == [b"blah", b"\xf7\xf8", b"foo\nbar"]


@pytest.mark.parametrize("text, error", [
    ('kw="unterminated\n', r"d.dict:1: not a dictionary entry"),
    ('ok="x"\nbad="\\q"\n', r"d.dict:2: bad escape"),
    ('kw=""\n', r"d.dict:1: empty token"),
    ('kw="caf\u00e9"\n', r"d.dict:1: only printable ASCII"),
])
def test_dictionary_errors_name_the_line(tmp_path, text, error):
    p = tmp_path / "d.dict"
    p.write_text(text, encoding="latin-1")
    with pytest.raises(InputError, match=error):
        load_dictionary(p)


def test_dictionary_files_and_directories(tmp_path):
    f = tmp_path / "x.dict"
    f.write_text(AFL_DICT)
    assert load_dictionary(f) == parse_dictionary(AFL_DICT)
    assert load_dictionary(f"{f}@1") == parse_dictionary(AFL_DICT, max_level=1)
    d = tmp_path / "tokens"
    d.mkdir()
    (d / "a").write_bytes(b"\x00\x01")
    (d / "b").write_bytes(b"GIF89a")
    (d / "empty").write_bytes(b"")
    assert load_dictionary(d) == [b"\x00\x01", b"GIF89a"]
    with pytest.raises(InputError, match="no such dictionary"):
        load_dictionary(tmp_path / "missing.dict")


def test_autodictionary_entries():
    blob = bytes([4]) + b"IHDR" + bytes([1]) + b"\x00" + bytes([0]) + bytes([6]) + b"GIF89a" + bytes([9]) + b"cut"
    assert parse_autodict(blob) == [b"IHDR", b"\x00", b"GIF89a"]
    assert parse_autodict(b"") == []

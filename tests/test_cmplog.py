"""The comparison log of `forkserver build --cmplog` builds: what it records, that it
records only while enabled, that snapshot and fork mode log the same, and that builds
without it carry nothing of it."""
import struct
import subprocess

import pytest

from conftest import BACKENDS, HARNESS_DIR, TEST_HARNESS_DIR, cli
from forkserver.build import build
from forkserver.cmplog import CmpLog
from forkserver.errors import BuildError
from forkserver.executors import make_executor
from forkserver.input_to_state import BytesComparison, IntComparison
from forkserver.inspect import inspect_binary
from forkserver.target import Target

KINDS = TEST_HARNESS_DIR / "cmp_kinds.c"
MAGIC = HARNESS_DIR / "magic_gates.c"


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmplog")
    return {"cmplog": build([KINDS], out / "kinds.cmplog", cmplog=True),
            "cmplog-gcc": build([KINDS], out / "kinds.cmplog.gcc", cc="gcc", cmplog=True),
            "plain": build([KINDS], out / "kinds.plain")}


@pytest.fixture(scope="module")
def magic(tmp_path_factory):
    return build([MAGIC], tmp_path_factory.mktemp("cmplog") / "magic.cmplog", cmplog=True)


def kinds_input(a8: int, a16: int, a32: int, a64: int, case: bytes, text: bytes) -> bytes:
    return struct.pack("<BHIQ", a8, a16, a32, a64) + case + text


def logged(binary, inputs: list[bytes], mode: str = "fork", log: CmpLog | None = None, enabled: bool = True):
    own = log is None
    log = log or CmpLog()
    try:
        with Target.from_command([str(binary)]) as t, make_executor(mode, t, 2000, extra_env=log.env()) as ex:
            out = []
            for data in inputs:
                if enabled:
                    log.begin()
                else:
                    log.int_hits[:] = 0
                    log.bytes_hits[:] = 0
                r = ex.run(data)
                log.end()
                out.append((r.outcome.value, r.exit_code, log.hits(), log.comparisons()))
            return out
    finally:
        if own:
            log.close()


@pytest.mark.parametrize("build_name", ["cmplog", "cmplog-gcc"])
def test_every_kind_of_comparison_is_logged(kinds, build_name):
    data = kinds_input(0x17, 0x0bad, 0x0badf00d, 0x1122334455667788, b"q", b"needle in the haystack\0")
    (outcome, code, hits, cmps), = logged(kinds[build_name], [data])
    assert outcome == "ok" and code == 0
    for want in (IntComparison(0x17, 0x42, 1), IntComparison(0x0bad, 0x1234, 2),
                 IntComparison(0x0badf00d, 0xdeadbeef, 4), IntComparison(0x1122334455667788, 0x0123456789abcdef, 8)):
        assert want in cmps or IntComparison(want.right, want.left, want.size) in cmps, want
    switch = {c.right for c in cmps if isinstance(c, IntComparison) and c.left == ord("q")}
    assert {ord("x"), ord("y"), ord("z")} <= switch, "each case of a switch is logged against the value"
    strings = [c for c in cmps if isinstance(c, BytesComparison)]
    text = b"needle in the haystack"
    for constant, seen in ((b"MEMCMP", text[:6]), (b"BCMP", text[:4]), (b"strcmp-key", text),
                           (b"strncmp", text[:7]), (b"CaseCmp", text), (b"NCASE", text[:5])):
        assert BytesComparison(seen, constant) in strings, (constant, strings)
    needles = {c.right for c in strings}
    assert {b"needle", b"straw"} <= needles
    assert hits >= len(cmps)


def test_string_functions_answer_as_the_c_library(kinds):
    """The cmplog build's memcmp and kin are its own: they must give the C library's
    answers (the sign of each result), on equal, shorter, longer and case-changed text."""
    texts = [b"", b"MEMCMP", b"MEMCMQ", b"MEMCMO", b"BCMP", b"strcmp-key", b"strcmp-kex", b"strcmp-key-longer",
             b"strcmp", b"strncmp-and-more", b"strncmo", b"casecmp", b"CASECMP", b"CaseCmq", b"ncase", b"NcAsEx",
             b"a needle", b"needl", b"straw", b"the strawberry", b"\xff\xfe", b"Z" * 60]
    for text in texts:
        data = kinds_input(0, 0, 0, 0, b"-", text + b"\0")
        answers = {name: subprocess.run([str(kinds[name])], input=data, capture_output=True).stdout
                   for name in ("plain", "cmplog", "cmplog-gcc")}
        assert answers["cmplog"] == answers["plain"] == answers["cmplog-gcc"], (text, answers)


def test_nothing_is_logged_while_logging_is_off(kinds):
    data = kinds_input(0x42, 0x1234, 0, 0, b"x", b"MEMCMP\0")
    (outcome, code, hits, cmps), = logged(kinds["cmplog"], [data], enabled=False)
    assert (outcome, code) == ("ok", 12) and hits == 0 and cmps == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_and_fork_mode_log_the_same(magic, backend):
    """Each gate of magic_gates passed in turn, and some near misses: the same
    comparisons, in the same order, in both modes."""
    gates = [b"\x00\x90\x5a\x4d", b"\x55\x1e\xed\x5e\xfe\xca\x0d\xf0", b"FZ-GO!", b"snapshot\0"]
    inputs = [b"", b"AAAA", b"\x00\x90\x5a\x4c" + b"x" * 20]
    inputs += [b"".join(gates[:k]) + b"tail-bytes\0" for k in range(1, 5)]
    inputs += [b"".join(gates[:2]) + b"FZ-GO?snapshot\0", b"".join(gates[:3]) + b"snapshoT\0"]
    log = CmpLog()
    try:
        fork = logged(magic, inputs, "fork", log)
        with Target.from_command([str(magic)]) as t, \
                make_executor("snapshot", t, 2000, backend=backend, extra_env=log.env()) as ex:
            snap = []
            for data in inputs * 2:  # twice: nothing an input logs may leak into the next
                log.begin()
                r = ex.run(data)
                log.end()
                snap.append((r.outcome.value, r.exit_code, log.hits(), log.comparisons()))
    finally:
        log.close()
    assert snap == fork * 2
    assert fork[-3][0] == "crash" and all(row[0] == "ok" for row in fork[:-3] + fork[-2:])


def test_builds_without_cmplog_carry_none_of_it(kinds):
    plain, cmplog = inspect_binary(kinds["plain"]), inspect_binary(kinds["cmplog"])
    assert cmplog.cmplog and not plain.cmplog
    defined = subprocess.run(["nm", "--defined-only", str(kinds["plain"])], capture_output=True, text=True).stdout
    assert "__sanitizer_cov_trace_cmp" not in defined and "__sanitizer_cov_trace_const_cmp" not in defined
    assert " T memcmp" not in defined


def test_cmplog_with_a_sanitizer_is_refused(tmp_path):
    with pytest.raises(BuildError, match="cannot carry sanitizers"):
        build([KINDS], tmp_path / "x", cmplog=True, sanitize=["address"])
    with pytest.raises(BuildError, match="cannot carry sanitizers"):
        build([KINDS], tmp_path / "x", cmplog=True, extra_flags=["-fsanitize=undefined"])


def test_build_cmplog_from_the_command_line(tmp_path):
    out = tmp_path / "magic.cmplog"
    proc = cli("build", str(MAGIC), "--cmplog", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert inspect_binary(out).cmplog

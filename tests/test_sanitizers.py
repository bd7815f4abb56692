"""Sanitizer builds in every mode: a sanitizer's finding is a crash with its one-line
summary, snapshot mode gives exactly fork mode's results on ASan's sparse shadow
memory, and the options a target gets are afl-fuzz's unless the user set them.

The zoo is tests/sanitizer_zoo/bugs.c (one bug per first input byte; its top comment
lists them), built with --sanitize address,undefined. Snapshot runs happen in a child
process with its own session (conftest.isolated_python), as in test_snapshot.py.
"""
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import BACKEND_PARAMS, BACKENDS, REPO
from forkserver import sanitizers
from forkserver.build import build
from forkserver.errors import TargetError
from forkserver.inspect import inspect_binary
from forkserver.target import Target

ZOO = Path(__file__).resolve().parent / "sanitizer_zoo" / "bugs.c"

# first byte -> the summary's start, and its end when it names the access
BUGS = {
    b"H": ("AddressSanitizer: heap-buffer-overflow", "WRITE of size 1"),
    b"R": ("AddressSanitizer: heap-buffer-overflow", "READ of size 1"),
    b"U": ("AddressSanitizer: heap-use-after-free", "READ of size 1"),
    b"D": ("AddressSanitizer: double-free", None),
    b"S": ("AddressSanitizer: stack-buffer-overflow", "WRITE of size 1"),
    b"G": ("AddressSanitizer: global-buffer-overflow", "READ of size 1"),
    b"O": ("UndefinedBehaviorSanitizer: signed-integer-overflow bugs.c:", None),
    b"L": ("UndefinedBehaviorSanitizer: invalid-shift-exponent bugs.c:", None),
    b"A": ("AddressSanitizer: heap-buffer-overflow", "WRITE of size 1"),
    # the input itself, passed in the runtime's window, overread as a heap block would be
    b"E": ("AddressSanitizer: heap-buffer-overflow", "READ of size 1"),
    b"B": ("AddressSanitizer: heap-buffer-overflow", "READ of size 1"),
}
LEAK = b"K"
# K leaks, which is a crash only with leak detection; V vforks, and its runner retires:
# ASan clears the stack's shadow with an mmap over it, a mapping of the snapshot
VFORK = b"V"
# M grows the allocator within an input; P checks that a heap block is put back; T that
# the input window holds nothing past its input, such as the long one's bytes
LONG = b"z" * 300
CLEAN = [b"", b"x", b"clean", b"K", VFORK, b"M", b"P", b"N", b"T", b"T" + b"\0" * 9, LONG]
# bugs with a second byte (the overflow's offset within the redzone) as well
ZOO_INPUTS = list(BUGS) + [k + bytes([d]) for k in (b"H", b"R", b"S", b"G") for d in (3, 5)] + [b"E" * 13] + CLEAN
SHUFFLED_RUNS = 1000


# ---- options and reports (no target) ----


def test_defaults_make_findings_crashes_and_skip_leak_checks():
    env = sanitizers.sanitizer_env({})
    for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "MSAN_OPTIONS"):
        opts = dict(o.split("=") for o in env[name].split(":"))
        assert opts["abort_on_error"] == "1" and opts["symbolize"] == "0"
        assert opts["handle_segv"] == opts["handle_abort"] == "0"
        assert opts["allocator_may_return_null"] == "1"
    assert "detect_leaks=0" in env["ASAN_OPTIONS"]
    assert "halt_on_error=1" in env["UBSAN_OPTIONS"]


def test_user_options_win_in_every_variable():
    env = sanitizers.sanitizer_env({"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1"})
    assert env["ASAN_OPTIONS"].endswith(":abort_on_error=0:detect_leaks=1")
    # ASan+UBSan builds read UBSAN_OPTIONS after ASAN_OPTIONS: ours must not undo the user's
    for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "MSAN_OPTIONS"):
        assert "abort_on_error=1" not in env[name] and "detect_leaks=0" not in env[name]
    assert env["UBSAN_OPTIONS"].startswith("symbolize=0:")


def test_leak_detection_checks_each_input_not_at_exit():
    env = sanitizers.sanitizer_env({}, detect_leaks=True)
    opts = env["ASAN_OPTIONS"].split(":")
    assert {"detect_leaks=1", "leak_check_at_exit=0", "malloc_context_size=30"} <= set(opts)
    assert "detect_leaks=0" not in opts and "malloc_context_size=0" not in opts


ASAN_REPORT = """\
=================================================================
==4242==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000018 at pc 0x55d0 bp 0x7ffc sp 0x7ff0
WRITE of size 1 at 0x602000000018 thread T0
    #0 0x55d0 (/tmp/x/h+0xeaff4) (BuildId: c18e3825c76842aca07462ad2789ff1ff66fb854)
SUMMARY: AddressSanitizer: heap-buffer-overflow (/tmp/x/h+0xeaff4) (BuildId: c18e3825c76842aca07462ad2789ff1ff66fb854)
==4242==ABORTING
"""
UBSAN_REPORT = """\
/src/dir/p.c:46:59: runtime error: signed integer overflow: 2147483647 + 1 cannot be represented in type 'int'
SUMMARY: UndefinedBehaviorSanitizer: signed-integer-overflow /src/dir/p.c:46:59 in
"""
LSAN_REPORT = """\
==77==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 24 byte(s) in 1 object(s) allocated from:
    #0 0x55 (/tmp/x/h+0xa427e)
SUMMARY: AddressSanitizer: 24 byte(s) leaked in 1 allocation(s).
"""


@pytest.mark.parametrize("text, want", [
    (ASAN_REPORT, "AddressSanitizer: heap-buffer-overflow (h+0xeaff4), WRITE of size 1"),
    ("chatter\n" + UBSAN_REPORT, "UndefinedBehaviorSanitizer: signed-integer-overflow p.c:46:59"),
    (LSAN_REPORT, "LeakSanitizer: detected memory leaks"),
    (UBSAN_REPORT + ASAN_REPORT, "AddressSanitizer: heap-buffer-overflow (h+0xeaff4), WRITE of size 1"),
    ("/a/p.c:3:1: runtime error: load of null pointer\n", "UndefinedBehaviorSanitizer: undefined-behavior"),
    ("Segmentation fault\n", ""),
    ("", ""),
], ids=["asan", "ubsan", "lsan", "last-report-wins", "ubsan-no-summary", "no-report", "empty"])
def test_report_summary(text, want):
    assert sanitizers.report_summary(text) == want


def test_detect_reads_markers_and_runtimes():
    assert sanitizers.detect(b"..__asan_init\0..__ubsan_handle_add_overflow\0") == ["address"]
    assert sanitizers.detect(b"__ubsan_handle_add_overflow\0") == ["undefined"]
    assert sanitizers.detect(b"__asan_init\0##FORKSERVER_SANITIZE:address,undefined##") == ["address", "undefined"]
    assert sanitizers.detect(b"__msan_init\0") == ["memory"]
    assert sanitizers.detect(b"plain") == []


@pytest.mark.parametrize("text, error", [
    ("memory", "MSan needs every library"), ("address,bogus", "unknown sanitizer 'bogus'"),
    ("thread", "ThreadSanitizer is not supported"),
])
def test_sanitize_list_refusals(text, error):
    with pytest.raises(TargetError, match=error):
        sanitizers.parse_list(text)


# ---- builds ----


@pytest.fixture(scope="module")
def zoo_bin(tmp_path_factory) -> Path:
    return build([ZOO], tmp_path_factory.mktemp("sanzoo") / "bugs", sanitize=["address", "undefined"])


def test_inspect_reports_the_sanitizers(zoo_bin):
    assert inspect_binary(zoo_bin).sanitizers == ["address", "undefined"]
    proc = subprocess.run([sys.executable, "-m", "forkserver", "inspect", str(zoo_bin)], capture_output=True,
                          text=True, cwd=REPO)
    assert "sanitizers: ['address', 'undefined']" in proc.stdout


def test_msan_binary_is_refused_with_the_reason(tmp_path):
    src = tmp_path / "m.c"
    src.write_text("int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return n > 3 && d[3]; }\n")
    binary = build([src], tmp_path / "m", extra_flags=["-fsanitize=memory"])
    with pytest.raises(TargetError, match="MemorySanitizer: MSan needs every library"):
        Target.from_command([str(binary)])
    proc = subprocess.run([sys.executable, "-m", "forkserver", "build", str(src), "-o", str(tmp_path / "m2"),
                           "--sanitize", "memory"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0 and "MSan needs every library" in proc.stderr
    assert not (tmp_path / "m2").exists()


# ---- the zoo: fork mode, then snapshot mode against it ----


DRIVER = textwrap.dedent("""
    import json, sys
    from forkserver.executors import ForkExecutor, SnapshotExecutor
    from forkserver.target import Target
    binary, backend, detect_leaks, schedule = json.loads(sys.argv[1])
    target = Target.from_command([binary])
    target.detect_leaks = detect_leaks
    ex = (ForkExecutor(target, 5000, cpu=None) if backend == "fork" else
          SnapshotExecutor(target, 5000, cpu=None, backend=backend))
    rows = []
    with ex:
        for hexed in schedule:
            r = ex.run(bytes.fromhex(hexed))
            rows.append([r.outcome.value, r.signal, r.exit_code, r.map_hash, r.sanitizer])
        started, snapshot_us = getattr(ex, "runners_started", 0), getattr(ex, "snapshot_us", None)
    target.cleanup()
    print(json.dumps({"rows": rows, "runners": started, "snapshot_us": snapshot_us}))
""")


def run_schedule(binary: Path, backend: str, schedule: list[bytes], detect_leaks: bool = False,
                 env: dict[str, str] | None = None) -> dict:
    """Results of schedule on one fresh executor ("fork" or a backend), in a child with
    its own session; env is added to the child's environment."""
    arg = json.dumps([str(binary), backend, detect_leaks, [d.hex() for d in schedule]])
    proc = subprocess.run([sys.executable, "-c", DRIVER, arg], capture_output=True, text=True, timeout=600,
                          start_new_session=True, cwd=REPO, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fork_rows(zoo_bin) -> dict[bytes, list]:
    rows = run_schedule(zoo_bin, "fork", ZOO_INPUTS)["rows"]
    return dict(zip(ZOO_INPUTS, rows))


def test_fork_mode_reports_each_bug_as_a_crash_with_its_summary(fork_rows):
    for data, row in fork_rows.items():
        outcome, sig, code, _, summary = row
        kind = BUGS.get(data[:1]) if data else None
        if kind is None:
            assert (outcome, code, summary) == ("ok", 0, ""), (data, row)
            continue
        assert (outcome, sig) == ("crash", 6), (data, row)
        start, access = kind
        assert summary.startswith(start), (data, summary)
        if access:
            assert summary.endswith(access), (data, summary)


def test_leaks_are_crashes_only_with_leak_detection(zoo_bin, fork_rows):
    assert fork_rows[LEAK][:3] == ["ok", None, 0]
    for backend in ["fork", *BACKENDS]:
        rows = run_schedule(zoo_bin, backend, [b"x", LEAK, b"x", LEAK], detect_leaks=True)["rows"]
        leak = ["crash", 6, None, fork_rows[LEAK][3], "LeakSanitizer: detected memory leaks"]
        clean = ["ok", None, 0, fork_rows[b"x"][3], ""]
        assert rows == [clean, leak, clean, leak], backend


def test_the_input_window_holds_nothing_past_the_input(zoo_bin):
    """Fuzzed inputs share one window that no restore rolls back: what a longer input
    left past a shorter one's end must be gone, in every mode."""
    schedule = [LONG, b"T", LONG, b"T" + b"\0" * 9, b"clean", b"T", b"E" * 200, b"T"]
    for backend in ["fork", *BACKENDS]:
        rows = run_schedule(zoo_bin, backend, schedule)["rows"]
        assert [r[0] for r in rows] == ["ok"] * 6 + ["crash", "ok"], backend


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_snapshot_matches_fork_on_every_bug(zoo_bin, fork_rows, backend):
    """Each bug between clean inputs, so that a bug's state (poisoned shadow, freed
    blocks, the allocator's growth) would show on the next clean input if it leaked."""
    schedule = []
    for data in ZOO_INPUTS:
        schedule += [data, b"x"]
    got = run_schedule(zoo_bin, backend, schedule)
    diffs = [(d, row, fork_rows[d]) for d, row in zip(schedule, got["rows"]) if row != fork_rows[d]]
    assert not diffs, "\n".join(f"{d!r}: snapshot {s} fork {f}" for d, s, f in diffs[:20])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_snapshot_equals_fork_over_shuffled_runs(zoo_bin, fork_rows, backend):
    rng = random.Random(20261130)
    clean_weight = [b"x"] * 6 + [b"", b"clean", LEAK]
    pool = ZOO_INPUTS + clean_weight * 2
    schedule = [rng.choice(pool) for _ in range(SHUFFLED_RUNS)]
    got = run_schedule(zoo_bin, backend, schedule)
    diffs = [(i, d, row, fork_rows[d]) for i, (d, row) in enumerate(zip(schedule, got["rows"])) if row != fork_rows[d]]
    assert len(got["rows"]) == SHUFFLED_RUNS
    assert not diffs, "\n".join(f"#{i} {d!r}: snapshot {s} fork {f}" for i, d, s, f in diffs[:20])
    # the last one's successor never starts
    retiring = sum(1 for d in schedule[:-1] if d[:1] in BUGS or d == VFORK)
    assert got["runners"] == retiring + 1, "every crash and vfork costs one runner, and nothing else does"


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_snapshot_runner_starts_with_every_size_class_mapped(zoo_bin, backend):
    """W asks for sizes the program never used: a runner's allocator serves them without
    mapping memory (each input would map it, and each restore unmap it again). Fork
    mode is not warmed up (its forks would copy those mappings' page tables), nor is
    snapshot mode with FORKSERVER_ASAN_WARMUP=0: there W finds the allocator growing,
    and aborts."""
    assert run_schedule(zoo_bin, "fork", [b"W"])["rows"][0][:2] == ["crash", 6]
    rows = run_schedule(zoo_bin, backend, [b"W", b"x", b"W"])["rows"]
    assert [r[0] for r in rows] == ["ok"] * 3
    cold = run_schedule(zoo_bin, backend, [b"W"], env={"FORKSERVER_ASAN_WARMUP": "0"})["rows"]
    assert cold[0][:2] == ["crash", 6], "FORKSERVER_ASAN_WARMUP=0 leaves the classes unmapped"


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_pages_left_clean_are_protected_and_trap_again(zoo_bin, backend):
    """One runner for all: the pages M writes stay open while inputs that do not write
    them are restored, until they are protected again; the next M writes them again,
    and must be caught as before (P checks that the heap was put back each time)."""
    schedule = ([b"M", b"P"] + [b"x"] * 40) * 3 + [b"P", b"M", b"P"]
    got = run_schedule(zoo_bin, backend, schedule)
    assert [r[0] for r in got["rows"]] == ["ok"] * len(schedule)
    assert got["runners"] == 1


def test_gcc_build_snapshot_matches_fork(tmp_path):
    """gcc links ASan as a shared library loaded before the C library: the runtime must
    still reach the C library's own memcpy and memcmp. gcc also instruments the global
    destructors, which an input's end must skip in fork mode as in snapshot mode."""
    binary = build([ZOO], tmp_path / "bugs.gcc", cc="gcc", sanitize=["address", "undefined"])
    schedule = []
    for data in ZOO_INPUTS:
        schedule += [data, b"x"]
    fork = run_schedule(binary, "fork", schedule)["rows"]
    snap = run_schedule(binary, "pagemap-scan", schedule)["rows"]
    assert all(row[0] == ("ok" if d[:1] not in BUGS else "crash") for d, row in zip(schedule, fork))
    diffs = [(d, s, f) for d, s, f in zip(schedule, snap, fork) if s != f]
    assert not diffs, "\n".join(f"{d!r}: snapshot {s} fork {f}" for d, s, f in diffs[:20])


def test_user_options_win(zoo_bin):
    """abort_on_error=0 from the user: ASan exits with 1 after its report, as asked."""
    rows = run_schedule(zoo_bin, "fork", [b"H"], env={"ASAN_OPTIONS": "abort_on_error=0"})["rows"]
    assert rows[0][:3] == ["ok", None, 1]


def test_asan_ini_parser_starts_in_snapshot_mode(tmp_path):
    """An ASan build of a real parser: its runner takes its snapshot of the sparse shadow
    (terabytes reserved) and reports ready within the 2 s start-up limit."""
    binary = build([REPO / "harnesses" / "ini_parser.c"], tmp_path / "ini", sanitize=["address"])
    got = run_schedule(binary, "auto", [b"[a]\nk=v\n"], env={"FORKSERVER_INIT_TIMEOUT_MS": "2000"})
    assert got["rows"][0][0] == "ok" and got["snapshot_us"] > 0

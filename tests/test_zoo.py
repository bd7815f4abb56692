"""The zoo: small hostile harnesses (tests/zoo/*.c), one behaviour each, that change
process state a snapshot restore must bring back, or start processes a snapshot runner
must not keep. Snapshot mode must give exactly fork mode's results on all of them.

Each harness reads its input from stdin; the first byte selects the action ('A' does
the hostile thing, anything else only observes). Every input first observes the state
an earlier input could have leaked and folds what it saw into the exit code, then acts;
the top comment of each harness documents its exit codes. In fork mode every input sees
a pristine process, so the results below are fixed; in snapshot mode a leak shows on
the next input.

- test_fork_mode_result: each harness gives its documented results in fork mode.
- test_snapshot_matches_fork: per backend and harness, a short schedule such as
  [A, x, A, A, x, x] on a fresh executor equals fork mode input by input; the runner has no
  children after any input; nothing of the target outlives the executor.
- test_kernel_writes_*: every (system call, memory area) pair of kernel_writes.c
  succeeds in fork mode and equals fork mode under every backend.
- test_zoo_mixed_equivalence: per backend, 10,000 (harness, input) pairs drawn with a
  fixed seed and run interleaved over one open SnapshotExecutor per harness.

Snapshot runs happen in a child process with its own session (tests/zoo.py), as in
test_snapshot.py. Backends: forkserver.doctor.available_backends(); soft-dirty, when the
kernel lacks it, is skipped once with doctor's reason.
"""
import json
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import BACKENDS, SOFT_DIRTY_OK, SOFT_DIRTY_REASON
from forkserver.build import build

TESTS = Path(__file__).resolve().parent
ZOO_DIR = TESTS / "zoo"
DRIVER = TESTS / "zoo.py"

TIMEOUT_MS = 2000
MIXED_COUNT = 10_000
MIXED_SEED = 20261130
MIXED_TIMEOUT_MS = 1000
MIXED_BUDGET_S = 120  # per backend; a run that needs more is reported as stopped early

# harness -> {input: exit code in fork mode (outcome ok, no signal)}
ACT = {"fork_wait": 109, "fork_exit": 109, "fork_return": 109, "fork_exit_group": 109,
       "system_true": 20, "system_exit7": 27, "exec_child_true": 100, "exec_child_sh": 105, "exec_self": 6,
       "posix_spawn": 104, "popen": 33,
       "cwd": 10, "umask": 10, "rlimit": 10, "comm": 10,
       "block_all": 10, "sigaction_leak": 10, "itimer": 10,
       "mprotect_global": 10, "munmap_snapshot": 10, "mremap_snapshot": 10, "mmap_fixed_snapshot": 10,
       "dup2_over": 10, "close_snapshot_fd": 10, "fenv": 10, "brk": 10, "sparse_reserve": 10,
       "sparse_walked": 10}
EXPECTED: dict[str, dict[bytes, int]] = {name: {b"A": code, b"x": 0} for name, code in ACT.items()}
EXPECTED["fork_orphan"] = {b"A": 10, b"L": 20, b"x": 0}
EXPECTED["handler_visible"] = {b"A": 10, b"A\x05": 10, b"x": 0, b"x\x05": 0}
PREAD_PAGE = b"P" + b"\x01" * 4094 + b"p"  # one page: big_region_write's pread fills it exactly
EXPECTED["big_region_write"] = {b"A\x00\x00": 10, b"A\x10\xfe": 10, b"A\xff\x33": 10, b"x": 0,
                                b"R0123456789": 11, b"W": 12, PREAD_PAGE: 13, b"Q": 14, b"V": 15}
EXPECTED["big_file_private"] = {b"A\x00": 10, b"A\x07": 10, b"x": 0}
EXPECTED["scattered_heap"] = {b"A\x00": 10, b"A\x05": 10, b"A\x4f": 10, b"x": 0}
EXPECTED["scattered_walked"] = EXPECTED["scattered_heap"]

DEFAULT_SCHEDULE = [b"A", b"x", b"A", b"A", b"x", b"x"]
SCHEDULES = {name: DEFAULT_SCHEDULE for name in EXPECTED}
SCHEDULES["fork_orphan"] = [b"A", b"x", b"L", b"x", b"L", b"A", b"x", b"x"]
SCHEDULES["handler_visible"] = [b"A", b"x", b"A\x05", b"x\x05", b"x"]
SCHEDULES["big_region_write"] = [b"A\x00\x00", b"x", b"A\x10\xfe", b"R0123456789", b"x", b"A\xff\x33", b"x",
                                 b"R0123456789", b"W", PREAD_PAGE, b"Q", b"x", b"A\x00\x00", PREAD_PAGE, b"x",
                                 b"V", b"x", b"V", b"x"]
SCHEDULES["scattered_heap"] = [b"A\x00", b"x", b"A\x05", b"A\x4f", b"x", b"A\x05", b"x"]
SCHEDULES["scattered_walked"] = SCHEDULES["scattered_heap"]
SCHEDULES["big_file_private"] = [b"A\x00", b"x", b"A\x07", b"A\x00", b"x", b"x"]

# ---- kernel_writes.c: its table, read from the source ----

KW_AREAS = ["bss", "small_heap", "big_heap"]


def kernel_write_calls() -> list[str]:
    """The entries of kernel_writes.c's TABLE, in order (input byte 0 indexes them)."""
    text = (ZOO_DIR / "kernel_writes.c").read_text()
    table = text[text.index("TABLE[] = {"):]
    return re.findall(r"^\s*ENTRY\((\w+)\),", table[:table.index("};")], re.M)


KW_CALLS = kernel_write_calls()
KW_PAIRS = [bytes([i, a]) for i in range(len(KW_CALLS)) for a in range(len(KW_AREAS))]
KW_COUNT_INPUT = b"\xff"  # exits with the number of table entries


def kw_name(data: bytes) -> str:
    return f"{KW_CALLS[data[0]]}@{KW_AREAS[data[1]]}" if len(data) == 2 else data.hex()


def kw_schedule() -> list[bytes]:
    """Every pair in table order, then every pair again in a shuffled order."""
    again = list(KW_PAIRS)
    random.Random(7).shuffle(again)
    return KW_PAIRS + again


ALL_INPUTS: dict[str, list[bytes]] = {name: list(codes) for name, codes in EXPECTED.items()}
ALL_INPUTS["kernel_writes"] = KW_PAIRS + [KW_COUNT_INPUT]


# ---- running the driver ----


def zoo_call(function: str, timeout: float = 600, **kwargs) -> dict:
    """Runs tests/zoo.py FUNCTION in a child with its own session."""
    for name in ("inputs", "schedules"):
        if name in kwargs:
            kwargs[name] = {h: [bytes(d).hex() for d in ds] for h, ds in kwargs[name].items()}
    proc = subprocess.run([sys.executable, str(DRIVER), function, json.dumps(kwargs)], capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)
    assert proc.returncode == 0, (f"{function} failed with status {proc.returncode} (negative: killed by that "
                                  f"signal)\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def show(obj) -> str:
    return json.dumps(obj, indent=1)[:8000]


def one_per_line(rows: list[dict]) -> str:
    return "\n".join("  " + json.dumps(row) for row in rows)[:8000]


@pytest.fixture(scope="module")
def zoo_bins(tmp_path_factory) -> dict[str, str]:
    """Every zoo harness, built once, in parallel."""
    out = tmp_path_factory.mktemp("zoo")
    sources = sorted(ZOO_DIR.glob("*.c"))
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {src.stem: pool.submit(build, [src], out / src.stem) for src in sources}
        return {name: str(f.result()) for name, f in futures.items()}


@pytest.fixture(scope="module")
def fork_ref(zoo_bins) -> dict:
    """Fork-mode results of every input of every harness (each run twice)."""
    return zoo_call("fork_results", bins=zoo_bins, inputs=ALL_INPUTS, timeout_ms=TIMEOUT_MS)


def reference(fork_ref) -> dict[str, dict[str, list]]:
    return {name: rep["results"] for name, rep in fork_ref.items()}


@pytest.fixture(scope="module")
def snapshot_reports(zoo_bins, fork_ref):
    """Per backend (computed on first use): every harness's schedule on a fresh
    SnapshotExecutor, compared with fork mode."""
    cache = {}

    def get(backend: str) -> dict:
        if backend not in cache:
            schedules = dict(SCHEDULES)
            schedules["kernel_writes"] = kw_schedule()
            cache[backend] = zoo_call("snapshot_schedules", bins=zoo_bins, schedules=schedules, backend=backend,
                                      timeout_ms=TIMEOUT_MS, reference=reference(fork_ref))
        return cache[backend]

    return get


# ---- the zoo is complete and right in fork mode ----


def test_every_zoo_source_has_its_expectations():
    assert sorted(p.stem for p in ZOO_DIR.glob("*.c")) == sorted(ALL_INPUTS)
    for src in ZOO_DIR.glob("*.c"):
        head = re.sub(r"\s*\n \*\s*", " ", src.read_text().split("*/")[0])
        assert head.startswith(f"/* {src.name} - "), f"{src.name}: the top comment names the harness"
        assert "Fork mode:" in head and "leak" in head, f"{src.name}: the top comment documents results and leaks"


@pytest.mark.parametrize("harness", sorted(EXPECTED))
def test_fork_mode_result(fork_ref, harness):
    rep = fork_ref[harness]
    assert not rep["errors"], rep["errors"]
    assert not rep["unstable"], f"fork mode gave two results for one input: {rep['unstable']}"
    got = {bytes.fromhex(d): tuple(k[:3]) for d, k in rep["results"].items()}
    want = {d: ("ok", None, code) for d, code in EXPECTED[harness].items()}
    assert got == want, f"details: {rep['details']}"
    assert all(k[3] is not None for k in rep["results"].values()), "every fork run reports coverage"
    assert not rep["left_behind"], f"fork mode left processes behind: {rep['left_behind']}"


def test_kernel_writes_fork_mode_succeeds(fork_ref):
    rep = fork_ref["kernel_writes"]
    assert not rep["errors"] and not rep["unstable"], (rep["errors"], rep["unstable"])
    assert rep["results"][KW_COUNT_INPUT.hex()][:3] == ["ok", None, len(KW_CALLS)], \
        "the table in kernel_writes.c and the names read from it agree"
    failed = {kw_name(bytes.fromhex(d)): k[:3] for d, k in rep["results"].items()
              if bytes.fromhex(d) != KW_COUNT_INPUT and k[:3] != ["ok", None, 0]}
    assert not failed, f"kernel_writes pairs that do not succeed in fork mode: {failed}"
    assert len(KW_PAIRS) == len(KW_CALLS) * 3 >= 3 * 30


# ---- snapshot mode equals fork mode, case by case ----


def check_case(rep: dict, harness: str, backend: str, label=lambda d: d.hex()) -> None:
    problems = []
    if rep["errors"]:
        problems.append("executor errors:\n" + "\n".join("  " + e for e in rep["errors"]))
    if rep["mismatches"]:
        for m in rep["mismatches"]:
            m["input"] = label(bytes.fromhex(m["input"]))
            if m["previous"]:
                m["previous"] = label(bytes.fromhex(m["previous"]))
        problems.append(f"results differ from fork mode ([outcome, signal, exit code, map hash]):\n"
                        f"{one_per_line(rep['mismatches'])}")
    if rep["runner_children"]:
        problems.append(f"the runner had children after an input:\n{one_per_line(rep['runner_children'])}")
    if rep["left_behind"]:
        problems.append(f"processes outlived the executor: {rep['left_behind']}")
    assert not problems, f"{harness} with {backend}:\n" + "\n".join(problems)
    assert rep["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("harness", sorted(EXPECTED))
def test_snapshot_matches_fork(snapshot_reports, harness, backend):
    rep = snapshot_reports(backend)[harness]
    assert len(rep["results"]) == len(SCHEDULES[harness])
    check_case(rep, harness, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_writes_snapshot_matches_fork(snapshot_reports, backend):
    rep = snapshot_reports(backend)["kernel_writes"]
    assert len(rep["results"]) == 2 * len(KW_PAIRS)
    check_case(rep, "kernel_writes", backend, label=kw_name)


# ---- all of the zoo, interleaved ----


def mixed_report(zoo_bins, fork_ref, backend: str) -> dict:
    return zoo_call("mixed", timeout=MIXED_BUDGET_S + 300, bins=zoo_bins, inputs=ALL_INPUTS, backend=backend,
                    count=MIXED_COUNT, seed=MIXED_SEED, timeout_ms=MIXED_TIMEOUT_MS,
                    reference=reference(fork_ref), budget_s=MIXED_BUDGET_S)


def check_mixed(rep: dict, backend: str) -> None:
    for m in rep["mismatches"]:
        if m["harness"] == "kernel_writes":
            m["input"] = kw_name(bytes.fromhex(m["input"]))
    summary = {k: rep[k] for k in ("execs", "planned", "stopped_early", "seconds", "mismatch_count",
                                   "mismatches_per_harness", "error_count", "runner_children_count",
                                   "runners_started")}
    detail = (show(summary) + "\nfirst mismatches ([outcome, signal, exit code, map hash]):\n"
              + one_per_line(rep["mismatches"]) + "\n"
              + show({"errors": rep["errors"], "runner_children": rep["runner_children"],
                      "left_behind": rep["left_behind"]}))
    assert rep["mismatch_count"] == 0, f"{backend}: snapshot results differ from fork mode:\n{detail}"
    assert rep["error_count"] == 0, f"{backend}: executors failed:\n{detail}"
    assert rep["runner_children_count"] == 0, f"{backend}: runners kept children:\n{detail}"
    assert not rep["left_behind"], f"{backend}: processes outlived their executors:\n{detail}"
    assert not rep["stopped_early"], f"{backend}: the run did not finish within {MIXED_BUDGET_S} s:\n{detail}"
    assert rep["execs"] == MIXED_COUNT and rep["backends"] == [backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zoo_mixed_equivalence(zoo_bins, fork_ref, backend):
    check_mixed(mixed_report(zoo_bins, fork_ref, backend), backend)


@pytest.mark.skipif(not SOFT_DIRTY_OK, reason=f"soft-dirty unavailable (forkserver doctor): {SOFT_DIRTY_REASON}")
def test_soft_dirty_backend(zoo_bins, fork_ref, snapshot_reports):
    reports = snapshot_reports("soft-dirty")
    for harness in EXPECTED:
        check_case(reports[harness], harness, "soft-dirty")
    check_case(reports["kernel_writes"], "kernel_writes", "soft-dirty", label=kw_name)
    check_mixed(mixed_report(zoo_bins, fork_ref, "soft-dirty"), "soft-dirty")


@pytest.mark.parametrize("backend", [b for b in ("pagemap-scan", "mprotect") if b in BACKENDS])
def test_scattered_mapping_costs_what_is_populated(zoo_bins, backend):
    """scattered_heap's 1 TiB mapping has 128 populated pages, 8 GiB apart. Each must be
    tracked on its own: tracking the span between them (half a terabyte) as one region
    costs a gigabyte of page tables, and on ASan's shadow a start-up of minutes."""
    from forkserver.executors import SnapshotExecutor
    from forkserver.target import Target
    with Target.from_command([zoo_bins["scattered_heap"]]) as t, \
            SnapshotExecutor(t, TIMEOUT_MS, cpu=0, backend=backend) as sx:
        results = [sx.run(data) for data in (b"A\x05", b"x", b"A\x4f")]
        with open(f"/proc/{sx.runner_pid}/status") as f:
            page_tables_kib = next(int(line.split()[1]) for line in f if line.startswith("VmPTE:"))
    assert [r.exit_code for r in results] == [10, 0, 10]
    assert page_tables_kib < 64 * 1024, f"the runner's page tables take {page_tables_kib} KiB"

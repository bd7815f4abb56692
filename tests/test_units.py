"""Pure-Python units: buckets, CoverageMap, outcomes, results, inputs, errors, protocol
constants, targets. Nothing here starts a target."""
import os
import re
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from forkserver import errors
from forkserver.build import BuildError, build, csrc_dir, protocol_header
from forkserver.cli import HUMAN_BUCKET
from forkserver.executors.base import (MAX_INPUT, ExecResult, Outcome, check_input_size, describe_status,
                                       outcome_from_status)
from forkserver.inputs import read_inputs
from forkserver.native import check, check_protocol, const_str, ffi, lib
from forkserver.observers import BUCKETS, CoverageMap, MapObserver

# ---- buckets ----

AFL_BUCKET_RANGES = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 4), (4, 7, 8), (8, 15, 16), (16, 31, 32),
                     (32, 127, 64), (128, 255, 128)]
HUMAN_RANGES = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 7, 4), (8, 15, 5), (16, 31, 6),
                (32, 127, 7), (128, 255, 8)]


def test_buckets_follow_afl_hit_count_classes():
    assert BUCKETS.dtype == np.uint8 and BUCKETS.shape == (256,)
    for lo, hi, bucket in AFL_BUCKET_RANGES:
        for v in range(lo, hi + 1):
            assert BUCKETS[v] == bucket, f"count {v} -> {BUCKETS[v]}, expected {bucket}"


def test_human_buckets_follow_afl_showmap_scale():
    assert len(HUMAN_BUCKET) == 256
    for lo, hi, bucket in HUMAN_RANGES:
        for v in range(lo, hi + 1):
            assert HUMAN_BUCKET[v] == bucket, f"count {v} -> {HUMAN_BUCKET[v]}, expected {bucket}"


# ---- CoverageMap ----

def expected_hash(counts: np.ndarray) -> int:
    """The documented hash: crc32 of the hit indices (u32 LE), continued over their buckets."""
    idx = [i for i, c in enumerate(counts) if c]
    crc = zlib.crc32(b"".join(struct.pack("<I", i) for i in idx))
    return zlib.crc32(bytes(int(BUCKETS[counts[i]]) for i in idx), crc)


def cmap(size: int = 64, **hits) -> CoverageMap:
    counts = np.zeros(size, dtype=np.uint8)
    for k, v in hits.items():
        counts[int(k[1:])] = v
    return CoverageMap(counts)


def test_coverage_map_edges_leave_out_byte_zero():
    m = cmap(e0=1, e5=3, e9=200)
    assert list(m.edge_ids) == [5, 9]
    assert m.edges == 2
    assert cmap().edges == 0
    assert cmap(e0=1).edges == 0


def test_coverage_map_buckets():
    m = cmap(e1=1, e2=3, e3=9, e4=255)
    assert list(m.buckets()[:5]) == [0, 1, 4, 16, 128]


def test_coverage_map_hash_matches_documented_formula():
    rng = np.random.default_rng(7)
    for _ in range(20):
        counts = rng.integers(0, 256, 300).astype(np.uint8)
        counts[rng.random(300) < 0.7] = 0
        assert CoverageMap(counts).hash == expected_hash(counts)
    empty = np.zeros(16, dtype=np.uint8)
    assert CoverageMap(empty).hash == 0 == zlib.crc32(b"")


def test_coverage_map_hash_depends_on_bucket_not_raw_count():
    assert cmap(e0=1, e7=4).hash == cmap(e0=1, e7=7).hash          # same bucket 4-7
    assert cmap(e0=1, e7=3).hash != cmap(e0=1, e7=4).hash          # 3 and 4 are different buckets
    assert cmap(e0=1, e7=1).hash != cmap(e0=1, e8=1).hash          # different edge
    assert cmap(e0=1, e7=1).hash != cmap(e0=1, e7=1, e9=1).hash    # one more edge
    # the map size past the last hit does not matter
    assert cmap(64, e3=2).hash == cmap(4096, e3=2).hash


def test_map_observer_clear_snapshot_resize():
    raw = np.zeros(1024, dtype=np.uint8)
    obs = MapObserver(raw, 100)
    raw[[0, 10, 99, 100, 500]] = [1, 2, 3, 4, 5]
    snap = obs.snapshot()
    assert snap.counts.shape == (100,)
    assert list(snap.edge_ids) == [10, 99]  # 100 and 500 lie past map_size
    raw[10] = 0
    assert snap.counts[10] == 2, "snapshot must be a copy, not a view of shared memory"
    obs.clear()
    assert not raw[:100].any() and raw[100] == 4 and raw[500] == 5, "clear touches only map_size bytes"
    obs.resize(600)
    assert list(obs.snapshot().edge_ids) == [100, 500]


# ---- outcomes ----

def exited(code: int) -> int:
    return (code & 0xff) << 8


def signalled(sig: int) -> int:
    return sig & 0x7f


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_outcome_from_exit_status(code):
    assert outcome_from_status(exited(code), False) == (Outcome.OK, None, code)


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT, signal.SIGFPE, signal.SIGKILL, signal.SIGILL])
def test_outcome_from_signal_status(sig):
    assert outcome_from_status(signalled(sig), False) == (Outcome.CRASH, int(sig), None)


def test_timeout_wins_over_status():
    assert outcome_from_status(signalled(signal.SIGKILL), True) == (Outcome.TIMEOUT, signal.SIGKILL, None)
    assert outcome_from_status(exited(0), True) == (Outcome.TIMEOUT, None, 0)


def _wait_status_of(script: str) -> int:
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", script], dict(os.environ))
    _, status = os.waitpid(pid, 0)
    return status


def test_outcome_from_real_wait_statuses():
    assert outcome_from_status(_wait_status_of("exit 7"), False) == (Outcome.OK, None, 7)
    assert outcome_from_status(_wait_status_of("kill -ABRT $$"), False) == (Outcome.CRASH, signal.SIGABRT, None)


def test_describe_status():
    assert describe_status(exited(3)) == "exited with code 3"
    assert describe_status(signalled(signal.SIGSEGV)) == "was killed by signal 11 (SIGSEGV)"


# ---- results ----

def test_exec_result_json_shape():
    cov = cmap(e0=1, e3=1, e4=2)
    r = ExecResult(Outcome.OK, None, 0, exec_us=12.3456, coverage=cov)
    d = r.as_json("seed")
    assert set(d) == {"input", "outcome", "signal", "exit_code", "edges", "map_hash", "exec_us", "dirty_pages"}
    assert d["input"] == "seed" and d["outcome"] == "ok" and d["exit_code"] == 0 and d["signal"] is None
    assert d["edges"] == 2
    assert d["map_hash"] == f"{cov.hash:08x}" and len(d["map_hash"]) == 8
    assert d["exec_us"] == 12.35
    assert d["dirty_pages"] is None


def test_exec_result_json_snapshot_fields_and_detail():
    r = ExecResult(Outcome.ERROR, None, 1, restore_us=3.14159, dirty_pages=7, runner_hash=0xAB, detail="why")
    d = r.as_json("x")
    assert d["outcome"] == "error"
    assert d["restore_us"] == 3.14 and d["dirty_pages"] == 7 and d["detail"] == "why"
    assert d["map_hash"] == "000000ab", "without a map, the runtime's hash is reported"
    assert d["edges"] is None
    nothing = ExecResult(Outcome.CRASH, 11, None).as_json("y")
    assert nothing["map_hash"] is None and "restore_us" not in nothing and "detail" not in nothing


def test_exec_result_prefers_map_over_runner_hash():
    cov = cmap(e0=1, e2=1)
    assert ExecResult(Outcome.OK, coverage=cov, runner_hash=1).map_hash == cov.hash


def test_input_size_limit():
    check_input_size(b"x" * MAX_INPUT)
    with pytest.raises(errors.InputError, match="larger than"):
        check_input_size(b"x" * (MAX_INPUT + 1))


# ---- reading inputs ----

def test_read_single_file(tmp_path):
    f = tmp_path / "one"
    f.write_bytes(b"\x00abc\xff")
    assert read_inputs(f) == [("one", b"\x00abc\xff")]
    assert read_inputs(str(f)) == [("one", b"\x00abc\xff")]


def test_read_directory_sorted_skipping_hidden_and_subdirs(tmp_path):
    (tmp_path / "b").write_bytes(b"2")
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / ".hidden").write_bytes(b"h")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c").write_bytes(b"3")
    (tmp_path / "empty").write_bytes(b"")
    assert read_inputs(tmp_path) == [("a", b"1"), ("b", b"2"), ("empty", b"")]


def test_read_missing_input(tmp_path):
    with pytest.raises(errors.InputError, match="input not found"):
        read_inputs(tmp_path / "no" / "such" / "file")


def test_read_broken_symlink_is_missing(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(errors.InputError, match="input not found"):
        read_inputs(tmp_path / "dangling")


def test_read_empty_directory(tmp_path):
    with pytest.raises(errors.InputError, match="no input files"):
        read_inputs(tmp_path)


def test_read_unreadable_file():
    # /proc/self/mem is a regular file whose read at offset 0 fails with EIO for every
    # user, root included (address 0 is never mapped); chmod 000 does not stop root.
    with pytest.raises(errors.InputError, match=r"cannot read input /proc/self/mem"):
        read_inputs("/proc/self/mem")


def test_read_unreadable_file_inside_directory(tmp_path):
    (tmp_path / "good").write_bytes(b"ok")
    (tmp_path / "zz_bad").symlink_to("/proc/self/mem")
    with pytest.raises(errors.InputError, match="zz_bad"):
        read_inputs(tmp_path)


# ---- errors ----

def test_error_exit_codes_and_hierarchy():
    assert errors.UsageError("x").exit_code == 2
    for cls in (errors.TargetError, errors.TargetStartError, errors.BackendUnavailable, errors.RunnerError,
                errors.BuildError, errors.InputError, errors.OutputDirError):
        assert issubclass(cls, errors.ForkserverError)
        assert cls("x").exit_code == 1
    assert issubclass(errors.TargetStartError, errors.TargetError)
    e = errors.NativeError(5, "boom")
    assert e.errno == 5 and str(e) == "boom"


def test_native_check():
    assert check(0, "x") == 0 and check(17, "x") == 17
    with pytest.raises(errors.NativeError) as info:
        check(-2, "opening thing")
    assert info.value.errno == 2
    assert str(info.value) == f"opening thing: {os.strerror(2)}"


# ---- protocol constants ----

def _header_defines() -> list[tuple[str, str]]:
    """Every `#define FS_NAME VALUE` of the protocol header (value on the same line)."""
    text = re.sub(r"/\*.*?\*/", "", protocol_header().read_text(), flags=re.S)
    return re.findall(r"^#define[ \t]+(FS_\w+)[ \t]+(\S[^\n]*?)[ \t]*$", text, flags=re.M)


def test_every_protocol_constant_is_visible_from_python():
    """The header is the single source of the protocol: each integer and string #define
    must reach Python through cffi with its value (none silently dropped)."""
    defines = _header_defines()
    assert len(defines) > 50
    missing, wrong = [], []
    for name, value in defines:
        if not hasattr(lib, name):
            missing.append(name)
            continue
        got = getattr(lib, name)
        want = value.strip('"') if value.startswith('"') else int(value, 0)
        have = const_str(got) if value.startswith('"') else got
        if have != want:
            wrong.append((name, have, want))
    assert not missing, f"protocol constants missing from forkserver._native.lib: {missing}"
    assert not wrong, wrong


def test_protocol_constants_match_afl():
    header = dict(_header_defines())
    assert header["FS_FORKSRV_CTL_FD"] == "198" and header["FS_FORKSRV_ST_FD"] == "199"
    assert lib.FS_FORKSRV_ST_FD == 199
    assert const_str(lib.FS_ENV_SHM_ID) == "__AFL_SHM_ID"
    assert const_str(lib.FS_ENV_SHM_FUZZ_ID) == "__AFL_SHM_FUZZ_ID"
    assert const_str(lib.FS_SIG_PERSISTENT) == "##SIG_AFL_PERSISTENT##"
    assert const_str(lib.FS_SIG_DEFER) == "##SIG_AFL_DEFER_FORKSRV##"
    assert lib.FS_OPT_ENABLED == 0x80000001 and lib.FS_OPT_MAPSIZE == 0x40000000
    assert lib.FS_OPT_SHDMEM_FUZZ == 0x01000000
    assert lib.FS_NEW_HELLO == 0x41464C01
    assert lib.FS_MAP_SIZE_DEFAULT == 65536


def test_protocol_structs_are_visible():
    ctl = ffi.new("struct fs_control *")
    assert ffi.sizeof("struct fs_control") > lib.FS_INPUT_AREA_SIZE
    assert len(ctl.results) == lib.FS_MAX_BATCH
    assert ffi.sizeof("struct fs_run_result") > 0 and ffi.sizeof("struct fs_batch_result") > 0


def test_protocol_header_digest_matches_compiled_helpers(tmp_path):
    check_protocol(protocol_header())  # the installed helpers match the sources
    changed = tmp_path / "fs_protocol.h"
    changed.write_bytes(protocol_header().read_bytes() + b"\n#define FS_SOMETHING_NEW 1\n")
    with pytest.raises(errors.ForkserverError, match="changed since the helpers were compiled"):
        check_protocol(changed)


def test_csrc_dir_has_runtime():
    root = csrc_dir()
    assert (root / "include" / "forkserver.h").is_file()
    assert (root / "runtime" / "runtime.c").is_file()


# ---- build argument errors (no compiler run) ----

def test_build_missing_source(tmp_path):
    with pytest.raises(BuildError, match="no such source file"):
        build([tmp_path / "nope.c"], tmp_path / "out")


def test_build_rejects_non_c_source(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(BuildError, match="not a C or C\\+\\+ source"):
        build([txt], tmp_path / "out")


# ---- the runtime's objects, compiled once ----

def test_runtime_objects_are_compiled_once_per_compiler_and_source_tree(tmp_path, monkeypatch):
    """The second build reuses the first one's runtime objects (and makes the same binary);
    a changed runtime source makes a new set; without a usable cache each build compiles
    its own."""
    import shutil

    from forkserver import build as build_mod
    from forkserver.errors import ConfigError

    tree = tmp_path / "csrc"
    shutil.copytree(csrc_dir(), tree)
    monkeypatch.setattr(build_mod, "csrc_dir", lambda: tree)
    monkeypatch.setattr(build_mod, "cache_dir", lambda: tmp_path / "cache")
    harness = Path(__file__).resolve().parents[1] / "harnesses" / "crash.c"
    first = build([harness], tmp_path / "first")
    store = build_mod._runtime_store(build_mod.pick_compiler())
    kept = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    assert "runtime_snapshot.c.o" in kept and "runtime_main_entry.c.o" in kept
    second = build([harness], tmp_path / "second")
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == kept  # nothing compiled again
    assert first.read_bytes() == second.read_bytes()

    (tree / "runtime" / "config.c").write_text((tree / "runtime" / "config.c").read_text() + "\n/* changed */\n")
    assert build_mod._runtime_store(build_mod.pick_compiler()) != store

    def unusable():
        raise ConfigError("FORKSERVER_CACHE_DIR cannot be written")
    monkeypatch.setattr(build_mod, "cache_dir", unusable)
    assert build_mod._runtime_store(build_mod.pick_compiler()) is None
    assert build([harness], tmp_path / "third").is_file()


# ---- targets ----

def test_target_errors(tmp_path):
    from forkserver.target import Target

    with pytest.raises(errors.TargetError, match="no target given"):
        Target.from_command([])
    with pytest.raises(errors.TargetError, match="target not found"):
        Target.from_command([str(tmp_path / "missing")])
    with pytest.raises(errors.TargetError, match="directory"):
        Target.from_command([str(tmp_path)])
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\necho hi\n")
    text.chmod(0o755)
    with pytest.raises(errors.TargetError, match="not an ELF binary"):
        Target.from_command([str(text)])
    elf = tmp_path / "elf"
    elf.write_bytes(Path("/bin/true").read_bytes())
    elf.chmod(0o644)
    with pytest.raises(errors.TargetError, match="not executable"):
        Target.from_command([str(elf)])


def test_target_argv_env_and_markers(monkeypatch):
    from forkserver.target import Target

    monkeypatch.setenv("__AFL_SHM_ID", "1234")          # stale ids from a caller must not leak in
    monkeypatch.setenv("FORKSERVER_MODE", "snapshot")
    t = Target.from_command(["true", "-x", "@@", "pre@@post"], env={"MYVAR": "1"})
    try:
        assert t.path == Path("/bin/true").resolve() or t.path.name == "true"
        assert t.uses_file_input
        argv = t.argv()
        assert argv[0] == str(t.path) and argv[1] == "-x"
        assert argv[2] == str(t.input_path) and argv[3] == f"pre{t.input_path}post"
        env = t.base_env()
        assert env["MYVAR"] == "1"
        assert "__AFL_SHM_ID" not in env and "FORKSERVER_MODE" not in env
        assert not t.info.forkserver_runtime and not t.info.afl_instrumented
        with pytest.raises(errors.TargetError, match="no fork-server runtime"):
            t.require_instrumented()
        assert not Target.from_command(["true"]).uses_file_input
    finally:
        t.cleanup()
    assert not t.workdir.exists()

"""AFL++'s fork-server protocol, both handshakes, both directions, word for word as
AFLPP_PROTOCOL.md captures them from afl-fuzz 4.04c and 4.22a.

- Our runtime against a fake afl-fuzz written here: the old handshake (4.04c), the new
  one (4.20c and later), the new hello answered by an old afl-fuzz, and the error words.
- Our orchestrator against a fake target (tests/harnesses/fake_aflpp_target.c) that
  sends each handshake and each error code as AFL++'s runtimes do.
- Maps larger than 8 MiB: a 16 MiB map, built by afl-clang-fast and by us, in every mode.
Debian's afl-fuzz 4.04c driving our builds is tested in test_fuzz.py and test_robustness.py.
"""
import contextlib
import os
import select
import shutil
import signal
import struct
import subprocess

import numpy as np
import pytest

from conftest import REPO, TEST_HARNESS_DIR, RawForkServer, cli, guard_count, one_error_line, tick_map_index
from forkserver.build import build
from forkserver.executors import ExecExecutor, ForkExecutor, SnapshotExecutor
from forkserver.fuzzer import read_stats
from forkserver.shm import SharedMemory
from forkserver.target import Target

FS_OPT_ENABLED = 0x80000001
FS_OPT_MAPSIZE = 0x40000000
FS_OPT_SHDMEM_FUZZ = 0x01000000
NEW_HELLO_BYTES = bytes.fromhex("014c4641")   # 0x41464c01, "AFL" version 1, little-endian
NEW_REPLY_BYTES = bytes.fromhex("feb3b9be")   # its complement, as afl-fuzz 4.22a answers
NEW_OPT_MAPSIZE, NEW_OPT_SHDMEM_FUZZ = 1, 2
MAP_16_MIB = 16 << 20
# the last guard of tests/harnesses/huge_map.c is the map's last byte; with the
# program's own few guards the map is just under 16 MiB
HUGE_MAP_RANGE = range(MAP_16_MIB - 64, MAP_16_MIB + 1)


@pytest.fixture(scope="module")
def counted(bins):
    return bins["counted"], tick_map_index(bins["counted"])


@pytest.fixture(scope="module")
def fake_target(tmp_path_factory):
    out = tmp_path_factory.mktemp("fake") / "fake_aflpp_target"
    subprocess.run(["cc", "-O1", "-o", str(out), str(TEST_HARNESS_DIR / "fake_aflpp_target.c")], check=True)
    return out


@pytest.fixture(scope="module")
def huge_maps(tmp_path_factory):
    """tests/harnesses/huge_map.c built by `forkserver build` and by afl-clang-fast."""
    afl_cc = shutil.which("afl-clang-fast")
    assert afl_cc, "afl-clang-fast is missing: scripts/setup.sh installs afl++"
    out = tmp_path_factory.mktemp("huge")
    src = TEST_HARNESS_DIR / "huge_map.c"
    ours = build([src], out / "huge_ours")
    subprocess.run([afl_cc, "-O1", "-o", str(out / "huge_afl"), str(src)], check=True, capture_output=True,
                   env={**os.environ, "AFL_QUIET": "1"})
    return {"ours": ours, "afl": out / "huge_afl"}


def stdin_file(tmp_path, data: bytes):
    path = tmp_path / "stdin"
    path.write_bytes(data)
    return path


def run_once(server: RawForkServer, was_killed: int = 0) -> int:
    """One run of AFL++'s per-exec exchange: was_killed out, the pid and the status back."""
    server.write(was_killed)
    child = server.read()
    status = server.read()
    assert child > 0, child
    return status


# ---- our runtime, against a fake afl-fuzz ----


@contextlib.contextmanager
def new_hello_server(binary, tmp_path, stdin: bytes):
    """A fork server told to speak the new handshake first, with a coverage map, a
    test-case buffer and stdin holding `stdin`: (server, map, buffer)."""
    cov, fuzz = SharedMemory(1 << 23), SharedMemory(4 + (1 << 20))
    server = RawForkServer(binary, {"__AFL_SHM_ID": str(cov.id), "__AFL_SHM_FUZZ_ID": str(fuzz.id),
                                    "FORKSERVER_MODE": "fork", "FORKSERVER_INPUT_STDIN": "1",
                                    "FORKSERVER_AFL_HANDSHAKE": "new"}, stdin=stdin_file(tmp_path, stdin))
    try:
        yield server, cov, fuzz
    finally:
        server.close()
        cov.close()
        fuzz.close()


def test_new_handshake_as_afl_fuzz_4_22a_speaks_it(counted, tmp_path):
    """Byte for byte: hello, complement, options (map size and test-case buffer), the
    size as a raw word, hello again; no reply takes the buffer; runs read from it."""
    binary, tick = counted
    with new_hello_server(binary, tmp_path, b"9") as (server, cov, fuzz):
        assert struct.pack("<I", server.read()) == NEW_HELLO_BYTES
        os.write(server.ctl_w, NEW_REPLY_BYTES)
        assert server.read() == NEW_OPT_MAPSIZE | NEW_OPT_SHDMEM_FUZZ
        assert server.read() == guard_count(binary) + 1
        assert struct.pack("<I", server.read()) == NEW_HELLO_BYTES
        counts = []
        for n in (5, 300):
            data = str(n).encode()
            fuzz.buffer[0:4 + len(data)] = len(data).to_bytes(4, "little") + data
            cov.array[:] = 0
            status = run_once(server)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            counts.append((int(cov.array[0]), int(cov.array[tick])))
    assert counts == [(1, 5), (1, 300 % 255)], "the input came from the test-case buffer, not stdin's 9"


def test_new_hello_to_an_old_afl_fuzz_falls_back_to_classic_afl(counted, tmp_path):
    """afl-fuzz 4.04c takes the new hello for classic AFL's (no options) and sends its
    first run's was_killed where a new fuzzer answers: the runtime runs that input, from
    stdin (classic AFL has no test-case buffer), and every later one."""
    binary, tick = counted
    with new_hello_server(binary, tmp_path, b"7") as (server, cov, _):
        hello = server.read()
        assert hello == 0x41464C01 and hello & FS_OPT_ENABLED != FS_OPT_ENABLED, "4.04c reads it as no options"
        counts = []
        for was_killed in (0, 1, 0):
            cov.array[:] = 0
            status = run_once(server, was_killed)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            counts.append(int(cov.array[tick]))
    assert counts == [7, 7, 7]


@pytest.mark.parametrize("env, first", [
    ({}, "old"),
    ({"FORKSERVER_AFL_HANDSHAKE": "new"}, "new"),
    ({"FORKSERVER_AFL_HANDSHAKE": "old"}, "old"),
])
def test_which_handshake_the_runtime_speaks_first(bins, env, first):
    server = RawForkServer(bins["maze"], env)
    try:
        hello = server.read()
    finally:
        server.close()
    if first == "new":
        assert hello == 0x41464C01, f"{hello:#x}"
    else:
        assert hello & FS_OPT_ENABLED == FS_OPT_ENABLED and hello & FS_OPT_MAPSIZE, f"{hello:#x}"


@pytest.mark.parametrize("handshake, word", [("old", 0xF800008F | 1 << 8), ("new", 0xEFFE0001)])
def test_map_too_small_is_an_error_word_in_place_of_the_hello(bins, handshake, word):
    """A 64-byte map for a target with more guards: FS_ERROR_MAP_SIZE in the form each
    handshake reads, first and alone, and the server gives up."""
    assert guard_count(bins["ini_parser"]) > 64
    cov = SharedMemory(64)
    server = RawForkServer(bins["ini_parser"], {"__AFL_SHM_ID": str(cov.id), "FORKSERVER_AFL_HANDSHAKE": handshake})
    try:
        assert server.read() == word
        _, status = os.waitpid(server.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0, status
    finally:
        server.close()
        cov.close()


def test_a_map_over_8_mib_goes_through_the_new_handshake(huge_maps):
    """The old handshake has 23 bits for the size: a 16 MiB map needs the new one."""
    cov = SharedMemory(MAP_16_MIB)
    server = RawForkServer(huge_maps["ours"], {"__AFL_SHM_ID": str(cov.id)})
    try:
        assert struct.pack("<I", server.read()) == NEW_HELLO_BYTES
        os.write(server.ctl_w, NEW_REPLY_BYTES)
        assert server.read() == NEW_OPT_MAPSIZE
        assert server.read() in HUGE_MAP_RANGE
        assert struct.pack("<I", server.read()) == NEW_HELLO_BYTES
    finally:
        server.close()
        cov.close()


# ---- our orchestrator, against a fake target ----


@pytest.mark.parametrize("kind, map_size, autodict", [
    ("old", 4096, b""),
    ("classic", 65536, b""),          # no options: classic AFL's map
    ("new", 4096, b""),
    ("new-dict", 4096, b"\x04GATE\x03key"),
])
def test_orchestrator_reads_each_handshake(fake_target, kind, map_size, autodict):
    target = Target.from_command([str(fake_target)], env={"FAKE_HANDSHAKE": kind, "FAKE_MAP_SIZE": "4096"})
    with target, ForkExecutor(target) as ex:
        assert ex.session.map_size == map_size
        assert ex.session.autodict == autodict
        marked = ex.run(b"x", keep_map=True)
        other = ex.run(b"y", keep_map=True)
    assert marked.exit_code == 7 and other.exit_code == 0
    assert list(np.flatnonzero(other.coverage.counts)) == [0, 4095], "the run's two bytes, at 0 and size - 1"


@pytest.mark.parametrize("kind", ["new", "classic"])
def test_orchestrator_gives_a_16_mib_map_to_a_target_that_needs_it(fake_target, kind):
    """new: the target says 16 MiB in the handshake; classic (4.04c over 8 MiB): it
    refuses the 8 MiB map with FS_ERROR_MAP_SIZE and prints its size for
    AFL_DUMP_MAP_SIZE. Either way it is started again with 16 MiB, and AFL_MAP_SIZE says so."""
    target = Target.from_command([str(fake_target)], env={"FAKE_HANDSHAKE": kind, "FAKE_MAP_SIZE": str(MAP_16_MIB)})
    with target, ForkExecutor(target) as ex:
        assert ex.map_shm.size == MAP_16_MIB and ex.session.map_size == MAP_16_MIB
        result = ex.run(b"y", keep_map=True)
    assert list(np.flatnonzero(result.coverage.counts)) == [0, MAP_16_MIB - 1]


@pytest.mark.parametrize("kind", ["error-old", "error-new"])
@pytest.mark.parametrize("code, says", [
    (2, "fixed address"), (4, "could not open a shared memory segment"), (8, "could not attach the coverage map"),
    (16, "could not mmap"), (99, "error 99"),
])
def test_orchestrator_turns_each_error_code_into_what_to_do(fake_target, tmp_path, kind, code, says):
    seed = tmp_path / "seed"
    seed.write_bytes(b"y")
    proc = cli("run", "--mode", "fork", "-i", str(seed), "--", str(fake_target),
               env={"FAKE_HANDSHAKE": kind, "FAKE_ERROR": str(code)})
    assert proc.returncode != 0
    line = one_error_line(proc)
    assert says in line and "Broken pipe" not in line, line


def test_orchestrator_stops_a_target_that_always_wants_a_larger_map(fake_target, tmp_path):
    seed = tmp_path / "seed"
    seed.write_bytes(b"y")
    proc = cli("run", "--mode", "fork", "-i", str(seed), "--", str(fake_target), env={"FAKE_HANDSHAKE": "error-old"})
    line = one_error_line(proc)
    assert proc.returncode != 0 and "larger coverage map" in line and "AFL_MAP_SIZE" in line, line


# ---- a 16 MiB map, AFL++'s build and ours ----


def top_edge(showmap_stdout: str) -> int:
    return max(int(line.split(":")[0]) for line in showmap_stdout.splitlines() if ":" in line)


@pytest.mark.parametrize("build_by, mode", [("afl", "fork"), ("afl", "exec"), ("ours", "fork"),
                                            ("ours", "snapshot"), ("ours", "exec")])
def test_run_on_a_target_with_a_16_mib_map(huge_maps, tmp_path, build_by, mode):
    """`forkserver run` and `showmap` see the hit in the map's last byte. AFL++ 4.04c's
    runtime dumps the size it had before the constructor added its guards, and sends no
    size over 8 MiB, so the orchestrator finds 16 MiB by doubling the map."""
    z, other = tmp_path / "z", tmp_path / "other"
    z.write_bytes(b"Z")
    other.write_bytes(b"a")
    binary = str(huge_maps[build_by])
    shown = cli("showmap", "--mode", mode, "-i", str(z), "--", binary)
    assert shown.returncode == 0, shown.stderr
    assert top_edge(shown.stdout) in HUGE_MAP_RANGE
    assert top_edge(cli("showmap", "--mode", mode, "-i", str(other), "--", binary).stdout) < 1000
    ran = cli("run", "--mode", mode, "-i", str(z), "--", binary)
    assert ran.returncode == 0 and " ok " in ran.stdout, ran.stdout + ran.stderr


def test_fuzzing_a_target_with_a_16_mib_map(huge_maps, tmp_path):
    """The virgin map grows with the coverage map: the runner's novelty check covers it."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a").write_bytes(b"a")
    out = tmp_path / "out"
    proc = cli("fuzz", "-i", str(seeds), "-o", str(out), "--runs", "3000", "-s", "1", "--", str(huge_maps["ours"]))
    assert proc.returncode == 0, proc.stderr
    stats = read_stats(out / "default" / "fuzzer_stats")
    assert int(stats["total_edges"]) in HUGE_MAP_RANGE
    found = [p.read_bytes() for p in (out / "default" / "queue").iterdir() if p.is_file()]
    assert any(d.startswith(b"Z") for d in found), "the input reaching the map's last byte was kept"


def test_exec_and_fork_agree_on_a_16_mib_map(huge_maps):
    target = Target.from_command([str(huge_maps["ours"])])
    with target:
        hashes = {}
        for executor in (ExecExecutor, ForkExecutor, SnapshotExecutor):
            with executor(target) as ex:
                hashes[executor.mode] = [ex.run(d).map_hash for d in (b"Z", b"a")]
    assert hashes["exec"] == hashes["fork"] == hashes["snapshot"]
    assert hashes["fork"][0] != hashes["fork"][1]


# ---- afl-fuzz -c: comparisons in AFL++'s map ----

CMP_W, CMP_H = 65536, 32
# per layout: header size, operand-slot size, string-slot size, string slots, INS/RTN type
# values (AFL++'s include/cmplog.h at 4.04c, 4.21c and 4.22a)
CMP_LAYOUTS = {
    "4.04c": dict(header=8, slot=32, fn_slot=64, fn_slots=8, ins=1, rtn=2),
    "4.21c": dict(header=2, slot=42, fn_slot=66, fn_slots=16, ins=0, rtn=1),
    "4.22a": dict(header=2, slot=72, fn_slot=72, fn_slots=16, ins=0, rtn=1),
}


def cmp_map_size(layout: dict) -> int:
    return CMP_W * layout["header"] + CMP_W * CMP_H * layout["slot"]


def read_cmp_map(raw: bytes, name: str) -> list[tuple]:
    """Every logged comparison: ("ins", size, v0, v1) or ("rtn", v0 bytes, v1 bytes,
    string), read with AFL++'s layouts as documented (not with our writer's structs)."""
    lay = CMP_LAYOUTS[name]
    found = []
    for k in range(CMP_W):
        if name == "4.04c":
            (h,) = struct.unpack_from("<Q", raw, 8 * k)
            hits, shape, kind = h & 0xFFFFFF, (h >> 48) & 31, (h >> 53) & 3
        else:
            (h,) = struct.unpack_from("<H", raw, 2 * k)
            hits, shape, kind = h & 63, (h >> 6) & 31, (h >> 11) & 1
        if not hits:
            continue
        row = CMP_W * lay["header"] + k * CMP_H * lay["slot"]
        if kind == lay["ins"]:
            for i in range(min(hits, CMP_H)):
                at = row + i * lay["slot"]
                v0, v1 = struct.unpack_from("<QQ", raw, at) if name != "4.22a" else \
                    (struct.unpack_from("<Q", raw, at)[0], struct.unpack_from("<Q", raw, at + 32)[0])
                found.append(("ins", shape + 1, v0, v1))
        else:
            for i in range(min(hits, lay["fn_slots"])):
                at = row + i * lay["fn_slot"]
                if name == "4.22a":
                    v0, v1, l0, l1 = raw[at:at + 32], raw[at + 32:at + 64], raw[at + 64], raw[at + 65]
                else:
                    half = lay["fn_slot"] // 2
                    v0, l0, v1, l1 = raw[at:at + half - 1], raw[at + half - 1], raw[at + half:at + 2 * half - 1], \
                        raw[at + 2 * half - 1]
                found.append(("rtn", bytes(v0[:l0 & 0x7F]), bytes(v1[:l1 & 0x7F]), bool(l0 & 0x80)))
    return found


@pytest.fixture(scope="module")
def cmplog_bins(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmplog")
    return {"magic_gates": build([REPO / "harnesses" / "magic_gates.c"], out / "magic_gates", cmplog=True),
            "magic_gates_plain": build([REPO / "harnesses" / "magic_gates.c"], out / "magic_gates_plain"),
            "magic_u32": build([TEST_HARNESS_DIR / "magic_u32.c"], out / "magic_u32", cmplog=True),
            "magic_u32_plain": build([TEST_HARNESS_DIR / "magic_u32.c"], out / "magic_u32_plain")}


@pytest.mark.parametrize("layout", list(CMP_LAYOUTS))
def test_comparisons_land_in_each_afl_layout(cmplog_bins, layout):
    """A CMPLOG instance run by hand (no fork server): the map's size names the layout,
    and each of magic_gates' comparisons is where AFL++'s reader looks for it."""
    cmp_map = SharedMemory(cmp_map_size(CMP_LAYOUTS[layout]))
    data = struct.pack("<IQ", 0x4D5A9000, 0x4141414141414141) + b"FZ-GO?snapshoX\0"
    try:
        proc = subprocess.run([str(cmplog_bins["magic_gates"])], input=data, capture_output=True, timeout=30,
                              env={**os.environ, "__AFL_CMPLOG_SHM_ID": str(cmp_map.id)})
        found = read_cmp_map(bytes(cmp_map.buffer), layout)
    finally:
        cmp_map.close()
    assert proc.returncode == 1, proc.stderr  # one gate passed
    assert ("ins", 8, 0x4141414141414141, 0xF00DCAFE5EED1E55) in found or \
        ("ins", 8, 0xF00DCAFE5EED1E55, 0x4141414141414141) in found, found
    assert not any(kind == "ins" and v0 == 0x4D5A9000 for kind, _, v0, *_ in found), "an equal pair is not logged"


def test_afl_layout_strings_are_logged(cmplog_bins):
    """Past the first two gates: the memcmp (bytes) and then the strcmp (C strings,
    marked, with their NUL counted) reach the 4.04c layout."""
    layout = "4.04c"
    cmp_map = SharedMemory(cmp_map_size(CMP_LAYOUTS[layout]))
    data = struct.pack("<IQ", 0x4D5A9000, 0xF00DCAFE5EED1E55) + b"FZ-GO!snapshoX\0"
    try:
        subprocess.run([str(cmplog_bins["magic_gates"])], input=data, capture_output=True, timeout=30,
                       env={**os.environ, "__AFL_CMPLOG_SHM_ID": str(cmp_map.id)})
        rtn = [f for f in read_cmp_map(bytes(cmp_map.buffer), layout) if f[0] == "rtn"]
    finally:
        cmp_map.close()
    assert ("rtn", b"FZ-GO!", b"FZ-GO!", False) in rtn, rtn
    assert ("rtn", b"snapshoX\0", b"snapshot\0", True) in rtn, rtn


@pytest.mark.parametrize("size, build_name, says", [
    (12345, "magic_gates", "layout of no AFL++ release"),
    (CMP_W * 8 + CMP_W * CMP_H * 32, "magic_gates_plain", "built without them"),
])
def test_a_cmplog_instance_that_cannot_log_is_an_error(cmplog_bins, size, build_name, says):
    """An unknown map layout, or a build without --cmplog run as the CMPLOG instance:
    the error AFL++ sends for an outdated CMPLOG build, and the reason on stderr."""
    cmp_map = SharedMemory(size)
    server = RawForkServer(cmplog_bins[build_name], {"__AFL_CMPLOG_SHM_ID": str(cmp_map.id)})
    try:
        assert server.read() == 0xF800008F | 32 << 8
        _, status = os.waitpid(server.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0
        log = subprocess.run([str(cmplog_bins[build_name])], input=b"", capture_output=True, timeout=30,
                             env={**os.environ, "__AFL_CMPLOG_SHM_ID": str(cmp_map.id)})
    finally:
        server.close()
        cmp_map.close()
    assert says in log.stderr.decode(), log.stderr


@pytest.mark.parametrize("layout, first", [("4.04c", "old+cmplog"), ("4.21c", "new"), ("4.22a", "new")])
def test_the_cmplog_instance_speaks_what_its_afl_fuzz_reads(cmplog_bins, layout, first):
    """afl-fuzz -c before 4.20c takes the old handshake with FS_OPT_NEWCMPLOG, later
    ones only the new one: the map's layout tells them apart."""
    cmp_map = SharedMemory(cmp_map_size(CMP_LAYOUTS[layout]))
    server = RawForkServer(cmplog_bins["magic_gates"], {"__AFL_CMPLOG_SHM_ID": str(cmp_map.id)})
    try:
        hello = server.read()
    finally:
        server.close()
        cmp_map.close()
    if first == "new":
        assert hello == 0x41464C01, f"{hello:#x}"
    else:
        assert hello & FS_OPT_ENABLED == FS_OPT_ENABLED and hello & 0x02000000, f"{hello:#x}: no NEWCMPLOG bit"


def afl_fuzz(binary, seeds, out, seconds: int, *options) -> dict:
    """Debian's afl-fuzz for `seconds` (stopping at the first crash); its fuzzer_stats."""
    assert shutil.which("afl-fuzz"), "afl-fuzz is missing: scripts/setup.sh installs afl++"
    env = dict(os.environ, AFL_NO_UI="1", AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1",
               AFL_NO_AFFINITY="1", AFL_BENCH_UNTIL_CRASH="1")
    subprocess.run(["afl-fuzz", "-V", str(seconds), *options, "-i", str(seeds), "-o", str(out), "--", str(binary)],
                   env=env, capture_output=True, timeout=seconds + 120, start_new_session=True)
    stats = read_stats(out / "default" / "fuzzer_stats")
    assert stats, "afl-fuzz wrote no fuzzer_stats"
    return stats


def test_afl_fuzz_c_with_a_cmplog_build_finds_a_4_byte_magic(cmplog_bins, tmp_path):
    """afl-fuzz -c 0 on our --cmplog build reads the magic off the comparison and finds
    the crash behind it; the same afl-fuzz without -c, on the plain build, for at least
    as long, does not."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "seed").write_bytes(b"AAAAAAAA")
    # afl-fuzz is randomised (it usually finds the magic within seconds): a run with a
    # second seed before calling it a miss
    for rng_seed in (1, 2):
        out = tmp_path / f"with_c_{rng_seed}"
        with_c = afl_fuzz(cmplog_bins["magic_u32"], seeds, out, 60, "-c", "0", "-s", str(rng_seed))
        if int(with_c["saved_crashes"]) >= 1:
            break
    assert int(with_c["saved_crashes"]) >= 1, with_c
    found_in = int(with_c["run_time"])
    without = afl_fuzz(cmplog_bins["magic_u32_plain"], seeds, tmp_path / "without", max(10, found_in + 5))
    assert int(without["saved_crashes"]) == 0 and int(without["execs_done"]) > 10_000, without
    queue = [p.name for p in (out / "default" / "crashes").iterdir()]
    assert any("op:its" in name or "op:colorization" in name for name in queue), queue


@pytest.mark.parametrize("version, layout, works", [
    ("3.14c", None, False), ("4.00c", "4.00c-4.10c", True), ("4.04c", "4.00c-4.10c", True),
    ("4.10c", "4.00c-4.10c", True), ("4.20c", "4.20c-4.21c", True), ("4.21c", "4.20c-4.21c", True),
    ("4.22a", "4.22a", True), ("4.32c", "4.22a", True), ("unknown", None, False),
])
def test_version_matrix(version, layout, works):
    from forkserver import aflpp

    assert aflpp.cmplog_layout(version) == layout
    lines = aflpp.compatibility(version)
    assert lines[0].startswith("drives our builds: yes") == works, lines
    if version == "4.32c":
        assert "refused at start-up" in lines[1], lines


def test_doctor_says_what_works_with_the_installed_afl_fuzz():
    out = cli("doctor").stdout
    assert "afl-fuzz: 4.04c" in out
    assert "afl-fuzz -c: yes, comparison map 4.00c-4.10c" in out and "-c 0" in out, out


# ---- snapshot mode under afl-fuzz: crashes and timeouts ----


@pytest.fixture(scope="module")
def afl_snapshot_bins(tmp_path_factory):
    out = tmp_path_factory.mktemp("afl_snapshot")
    return {name: build([REPO / "harnesses" / f"{name}.c"], out / name, afl_snapshot=True) for name in ("crash", "hang")}


class FakeAflFuzz:
    """afl-fuzz 4.04c's side of a persistent target, input through a stdin file as
    afl-fuzz writes it: one open file shared with the target, rewritten and rewound
    before each run."""

    def __init__(self, binary, tmp_path, env: dict[str, str]):
        self.cov = SharedMemory(1 << 23)
        self.fd = os.open(tmp_path / ".cur_input", os.O_RDWR | os.O_CREAT, 0o600)
        self.server = RawForkServer(binary, {"__AFL_SHM_ID": str(self.cov.id), "__AFL_PERSISTENT": "1", **env},
                                    stdin=self.fd)
        hello = self.server.read()
        assert hello & FS_OPT_ENABLED == FS_OPT_ENABLED and not hello & FS_OPT_SHDMEM_FUZZ, f"{hello:#x}"
        self.was_killed = 0

    def run(self, data: bytes, timeout: float = 5) -> tuple[int, int]:
        """(pid, status) of one input; on a timeout, afl-fuzz's SIGKILL to the pid it got."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.write(self.fd, data)
        os.ftruncate(self.fd, len(data))
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.cov.array[:16] = 0
        self.server.write(self.was_killed)
        pid = self.server.read()
        ready, _, _ = select.select([self.server.st_r], [], [], timeout)
        self.was_killed = 0 if ready else 1
        if not ready:
            os.kill(pid, signal.SIGKILL)
        return pid, self.server.read()

    def close(self):
        os.close(self.fd)
        self.server.close()
        self.cov.close()


@pytest.mark.parametrize("direct", ["1", "0"], ids=["runner-answers", "sigstop"])
def test_afl_fuzz_crash_handling_in_snapshot_mode(afl_snapshot_bins, tmp_path, direct):
    """A persistent child's statuses: stopped after each input, the same pid until a
    crash, the crash's signal, then a fresh runner that runs the next input."""
    fuzz = FakeAflFuzz(afl_snapshot_bins["crash"], tmp_path, {"FORKSERVER_AFL_DIRECT": direct})
    try:
        first, status = fuzz.run(b"hello")
        assert os.WIFSTOPPED(status), hex(status)
        assert fuzz.cov.array[0] == 1, "the run reached the map"
        again, status = fuzz.run(b"EXIT3")
        assert again == first and os.WIFSTOPPED(status), (again, first, hex(status))
        crashed, status = fuzz.run(b"SEGV")
        assert crashed == first and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV, hex(status)
        fresh, status = fuzz.run(b"hello")
        assert fresh != first and os.WIFSTOPPED(status), (fresh, hex(status))
        _, status = fuzz.run(b"ABRT")
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT, hex(status)
        for _ in range(3):
            assert os.WIFSTOPPED(fuzz.run(b"hello")[1])
    finally:
        fuzz.close()


@pytest.mark.parametrize("direct", ["1", "0"], ids=["runner-answers", "sigstop"])
def test_afl_fuzz_timeout_handling_in_snapshot_mode(afl_snapshot_bins, tmp_path, direct):
    """afl-fuzz kills the pid it was given when an input hangs, still reads a status
    (SIGKILL's), and says was_killed with the next input, which a new runner runs."""
    fuzz = FakeAflFuzz(afl_snapshot_bins["hang"], tmp_path, {"FORKSERVER_AFL_DIRECT": direct})
    try:
        before, status = fuzz.run(b"hello")
        assert os.WIFSTOPPED(status)
        hung, status = fuzz.run(b"HANG", timeout=0.3)
        assert hung == before and fuzz.was_killed == 1
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, hex(status)
        after, status = fuzz.run(b"hello")
        assert after != hung and os.WIFSTOPPED(status) and fuzz.cov.array[0] == 1, (after, hex(status))
        _, status = fuzz.run(b"SLOW1")
        assert os.WIFSTOPPED(status)
    finally:
        fuzz.close()


@pytest.mark.parametrize("direct", ["1", "0"], ids=["runner-answers", "sigstop"])
def test_a_runner_killed_between_inputs_answers_the_next_one_as_killed(afl_snapshot_bins, tmp_path, direct):
    """Killed while waiting for afl-fuzz (by something else): the next input gets the
    dead runner's pid and its SIGKILL, and the one after runs in a new runner."""
    fuzz = FakeAflFuzz(afl_snapshot_bins["crash"], tmp_path, {"FORKSERVER_AFL_DIRECT": direct})
    try:
        runner, status = fuzz.run(b"hello")
        assert os.WIFSTOPPED(status)
        os.kill(runner, signal.SIGKILL)
        same, status = fuzz.run(b"hello")
        assert same == runner and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, hex(status)
        fresh, status = fuzz.run(b"hello")
        assert fresh != runner and os.WIFSTOPPED(status), (fresh, hex(status))
    finally:
        fuzz.close()


def test_a_build_run_on_its_own_grows_its_private_map_with_its_guards(huge_maps):
    """No fuzzer: the runtime's own map follows the guards (16 MiB here, from 8 MiB),
    and fits under a 1 GiB address-space limit, where reserving for any guard number
    would not."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    for data in (b"Z", b"a"):
        proc = subprocess.run([str(huge_maps["ours"])], input=data, capture_output=True, timeout=30,
                              preexec_fn=limit)
        assert proc.returncode == 0, (data, proc.returncode, proc.stderr[-500:])

"""Coverage against known answers that do not come from our own code: hit counts of a
loop run a known number of times, AFL's count classes written out here, the fork-server
hello word read straight off the pipe, and the guard count read from the ELF file.

tests/harnesses/counted.c calls counted_tick() (one basic block, one guard) exactly N
times for the input "N". Which map byte that guard owns is read from the binary: the
guard address in counted_tick's `lea rdi, [rip + disp32]`, as an offset into the
__sancov_guards section (guard k of the section is map byte k + 1).
"""
import os
import struct
import zlib

import numpy as np
import pytest

from conftest import BACKEND_PARAMS, RawForkServer, guard_count, tick_map_index
from forkserver.executors import ForkExecutor, SnapshotExecutor
from forkserver.shm import SharedMemory
from forkserver.target import Target

# AFL's count classes (afl-fuzz's count_class_lookup8), written out: hit count -> bucket
AFL_COUNT_CLASSES = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 4), (4, 7, 8), (8, 15, 16), (16, 31, 32),
                     (32, 127, 64), (128, 255, 128)]
AFL_BUCKET = [next(b for lo, hi, b in AFL_COUNT_CLASSES if lo <= c <= hi) for c in range(256)]

# the iteration counts the tests name one by one: every class boundary, and the wraps
BOUNDARY_COUNTS = [1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 127, 128, 255, 256, 257, 511, 512]

# AFL++ fork-server protocol, as afl-fuzz 4.x speaks it (old handshake)
FS_OPT_ENABLED = 0x80000001
FS_OPT_MAPSIZE = 0x40000000
FS_OPT_SHDMEM_FUZZ = 0x01000000
FS_OPT_ERROR = 0xF800008F
FS_OPT_MAX_MAPSIZE = 1 << 23


def raw_count(n: int) -> int:
    """The byte an 8-bit never-zero counter (AFL++'s NeverZero) holds after n hits: it
    wraps from 255 to 1, never to 0."""
    return 0 if n == 0 else (n - 1) % 255 + 1


def afl_hash(counts: np.ndarray) -> int:
    """The documented map hash, with the count classes above: crc32 of the hit indices
    (u32 LE) continued over their buckets."""
    idx = [int(i) for i in np.flatnonzero(counts)]
    crc = zlib.crc32(b"".join(struct.pack("<I", i) for i in idx))
    return zlib.crc32(bytes(AFL_BUCKET[int(counts[i])] for i in idx), crc)


@pytest.fixture(scope="module")
def counted(bins):
    return bins["counted"], tick_map_index(bins["counted"])


def test_the_table_here_is_afl_s():
    assert AFL_BUCKET[:9] == [0, 1, 2, 4, 8, 8, 8, 8, 16]
    assert [AFL_BUCKET[c] for c in (15, 16, 31, 32, 127, 128, 255)] == [16, 32, 32, 64, 64, 128, 128]
    assert raw_count(255) == 255 and raw_count(256) == 1 and raw_count(511) == 1 and raw_count(512) == 2


def test_loop_counts_land_in_afl_count_classes(counted):
    """Every count from 0 to 300 and the second wrap: the raw byte, its bucket, and the
    map hash all match the known answer; a loop of 256 or 512 iterations still shows."""
    binary, tick = counted
    counts = list(range(301)) + [509, 510, 511, 512, 513, 765, 766]
    t = Target.from_command([str(binary)])
    try:
        with ForkExecutor(t, 2000, cpu=None) as fx:
            baseline = fx.run(b"0", keep_map=True).coverage.counts
            assert baseline[tick] == 0, "no tick without iterations"
            wrong = []
            for n in counts:
                r = fx.run(str(n).encode(), keep_map=True)
                assert (r.outcome.value, r.exit_code) == ("ok", 0), (n, r)
                c = r.coverage.counts
                got = (int(c[tick]), int(r.coverage.buckets()[tick]), r.map_hash)
                want = (raw_count(n), AFL_BUCKET[raw_count(n)], afl_hash(c))
                if got != want:
                    wrong.append((n, got, want))
                if n % 256 == 0 and n:
                    assert tick in r.coverage.edge_ids, f"a loop of {n} iterations lost its edge"
    finally:
        t.cleanup()
    assert not wrong, f"(iterations, (raw, bucket, hash) got, wanted): {wrong[:10]}"


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_runtime_map_hash_uses_afl_count_classes(counted, backend):
    """Batched snapshot runs carry the hash the runtime computes in C: it must equal the
    hash of the fork-mode map under the count classes written out here."""
    binary, tick = counted
    inputs = [str(n).encode() for n in BOUNDARY_COUNTS + [0, 5, 6, 9, 100, 200]]
    t = Target.from_command([str(binary)])
    try:
        with ForkExecutor(t, 2000, cpu=None) as fx:
            want = [afl_hash(fx.run(d, keep_map=True).coverage.counts) for d in inputs]
        with SnapshotExecutor(t, 2000, cpu=None, backend=backend) as sx:
            got = [r.runner_hash for r in sx.run_batch(inputs, collect_maps=False)]
            single = sx.run(b"256", keep_map=True)
    finally:
        t.cleanup()
    assert got == want, [(d, g, w) for d, g, w in zip(inputs, got, want) if g != w]
    assert single.coverage.counts[tick] == 1 and single.coverage.counts[0] == 1


def _showmap(capsys, binary, path, *flags) -> dict[int, int]:
    from forkserver.cli import main

    rc = main(["showmap", "--mode", "fork", "--cpu", "none", *flags, "-i", str(path), "--", str(binary)])
    out = capsys.readouterr().out
    assert rc == 0
    return {int(line.split(":")[0]): int(line.split(":")[1]) for line in out.splitlines()}


def test_showmap_prints_known_counts(counted, tmp_path, capsys):
    """`forkserver showmap -r` prints the raw byte, `showmap` afl-showmap's scale: class
    k of the table (1, 2, 4, ..., 128) printed as k (1..8)."""
    binary, tick = counted
    for n in BOUNDARY_COUNTS:
        f = tmp_path / str(n)
        f.write_bytes(str(n).encode())
        raw = _showmap(capsys, binary, f, "-r")
        scaled = _showmap(capsys, binary, f)
        assert raw.get(tick) == raw_count(n), (n, raw.get(tick))
        assert scaled.get(tick) == AFL_BUCKET[raw_count(n)].bit_length(), (n, scaled.get(tick))
        assert raw.keys() == scaled.keys() and 0 not in raw


# ---- the handshake, read off the pipe ----


def map_size_of(hello: int) -> int:
    return ((hello & 0x00FFFFFE) >> 1) + 1


@pytest.mark.parametrize("harness", ["counted", "maze", "ini_parser"])
def test_hello_announces_guard_count_plus_one(bins, harness):
    server = RawForkServer(bins[harness], {})
    try:
        hello = server.read()
    finally:
        server.close()
    assert hello & FS_OPT_ERROR != FS_OPT_ERROR, f"error hello {hello:#x}"
    assert hello & FS_OPT_ENABLED == FS_OPT_ENABLED, f"{hello:#x}: options not enabled"
    assert hello & FS_OPT_MAPSIZE, f"{hello:#x}: no map size announced"
    assert not hello & FS_OPT_SHDMEM_FUZZ, "no test-case buffer was offered to it"
    guards = guard_count(bins[harness])
    assert guards > 5
    assert map_size_of(hello) == guards + 1, (hello, guards)


def test_raw_protocol_run_through_the_test_case_buffer(counted, tmp_path):
    """The whole exchange by hand: hello with a map size and the test-case buffer on
    offer, our reply taking it, one run of an input placed only in that buffer (stdin
    holds another one), and the map the child left in shared memory."""
    binary, tick = counted
    stdin = tmp_path / "stdin"
    stdin.write_bytes(b"7")
    cov = SharedMemory(FS_OPT_MAX_MAPSIZE)
    fuzz = SharedMemory(4 + (1 << 20))
    server = RawForkServer(binary, {"__AFL_SHM_ID": str(cov.id), "__AFL_SHM_FUZZ_ID": str(fuzz.id),
                                    "FORKSERVER_MODE": "fork", "FORKSERVER_INPUT_STDIN": "1"}, stdin=stdin)
    try:
        hello = server.read()
        assert hello & FS_OPT_MAPSIZE and map_size_of(hello) == guard_count(binary) + 1, f"{hello:#x}"
        assert hello & FS_OPT_SHDMEM_FUZZ, f"{hello:#x}: the test-case buffer was not offered"
        server.write(FS_OPT_ENABLED | FS_OPT_SHDMEM_FUZZ)
        results = []
        for n in (300, 256, 3):
            data = str(n).encode()
            fuzz.buffer[0:4 + len(data)] = len(data).to_bytes(4, "little") + data
            cov.array[:] = 0
            server.write(0)
            child = server.read()
            status = server.read()
            assert child > 0 and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (child, status)
            results.append((int(cov.array[0]), int(cov.array[tick])))
    finally:
        server.close()
        cov.close()
        fuzz.close()
    assert results == [(1, raw_count(300)), (1, raw_count(256)), (1, 3)], \
        "(map[0], tick count) per run; map[0] is the 'ran' byte, the count comes from the buffer's input"

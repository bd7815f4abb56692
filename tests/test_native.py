"""The cffi helpers: shared memory, pipe helpers, map classification, new-bits checks, and
the backend probes (which must agree with `forkserver doctor` and with the kernel)."""
import ctypes
import errno
import mmap
import os
import platform
import struct

import numpy as np
import pytest

from forkserver.doctor import available_backends, probe_backend, report
from forkserver.errors import NativeError
from forkserver.native import check, ffi, lib
from forkserver.observers import BUCKETS
from forkserver.shm import SharedMemory

# ---- shared memory ----


def test_shm_create_attach_share_bytes():
    seg = SharedMemory(8192)
    try:
        assert seg.size == 8192 and seg.array.shape == (8192,)
        assert not seg.array.any(), "a new segment is zero-filled"
        seg.array[[0, 100, 8191]] = [1, 2, 3]
        addr = ffi.new("void **")
        check(lib.fs_host_shm_attach(seg.id, 1, addr), "shmat")
        try:
            other = np.frombuffer(ffi.buffer(addr[0], 8192), dtype=np.uint8)
            assert (other[[0, 100, 8191]] == [1, 2, 3]).all(), "a second attach sees the same bytes"
            seg.array[5] = 9
            assert other[5] == 9
        finally:
            check(lib.fs_host_shm_detach(addr[0]), "shmdt")
    finally:
        seg.close()


def test_shm_readonly_attach_really_is_readonly():
    seg = SharedMemory(4096)
    try:
        addr = ffi.new("void **")
        check(lib.fs_host_shm_attach(seg.id, 1, addr), "shmat")
        try:
            view = np.frombuffer(ffi.buffer(addr[0], 4096), dtype=np.uint8)
            seg.array[1] = 7
            assert view[1] == 7
            # writing through a read-only attachment would SIGSEGV; check the mapping instead
            start = int(ffi.cast("uintptr_t", addr[0]))
            with open("/proc/self/maps") as f:
                line = next(l for l in f if int(l.split("-")[0], 16) == start)
            assert line.split()[1].startswith("r-")
        finally:
            lib.fs_host_shm_detach(addr[0])
    finally:
        seg.close()


def test_shm_close_removes_segment():
    seg = SharedMemory(4096)
    shm_id = seg.id
    seg.close()
    seg.close()  # idempotent
    addr = ffi.new("void **")
    rc = lib.fs_host_shm_attach(shm_id, 0, addr)
    assert rc in (-errno.EINVAL, -errno.EIDRM), f"attach after close returned {rc}"
    with pytest.raises(NativeError):
        check(rc, "shmat")


def test_shm_create_failure_is_native_error():
    with pytest.raises(NativeError):
        SharedMemory(1 << 62)  # far beyond SHMMAX


# ---- pipe helpers ----


def test_u32_pipe_roundtrip_timeout_and_eof():
    r, w = os.pipe()
    try:
        value = ffi.new("unsigned int *")
        assert lib.fs_host_read_u32(r, 10, value) == -errno.ETIMEDOUT
        assert lib.fs_host_write_u32(w, 0xDEADBEEF) == 0
        assert lib.fs_host_read_u32(r, 1000, value) == 0 and value[0] == 0xDEADBEEF
        os.write(w, struct.pack("<I", 42))
        assert lib.fs_host_read_u32(r, -1, value) == 0 and value[0] == 42
        os.close(w)
        w = -1
        assert lib.fs_host_read_u32(r, 1000, value) == -errno.EPIPE, "EOF means the peer is gone"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_u32_write_to_closed_pipe():
    r, w = os.pipe()
    os.close(r)
    try:
        assert lib.fs_host_write_u32(w, 1) == -errno.EPIPE
    finally:
        os.close(w)


# ---- classification and new bits ----


# AFL's count classes, written out (not read from our C table): hit count -> bucket
AFL_COUNT_CLASSES = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 4), (4, 7, 8), (8, 15, 16), (16, 31, 32),
                     (32, 127, 64), (128, 255, 128)]


def test_classify_follows_afl_count_classes():
    size = 512
    counts = np.array([i % 256 for i in range(size)], dtype=np.uint8)
    out = np.zeros(size, dtype=np.uint8)
    hits = lib.fs_host_classify(ffi.from_buffer(counts), size, ffi.from_buffer(out))
    assert hits == int(np.count_nonzero(counts)) == 510
    for i in range(size):
        want = next(b for lo, hi, b in AFL_COUNT_CLASSES if lo <= counts[i] <= hi)
        assert out[i] == want, f"count {counts[i]} -> {out[i]}, AFL says {want}"
    assert (BUCKETS == out[:256]).all(), "Python's table is the helpers' table"


def _new_bits(counts: np.ndarray, virgin: np.ndarray, update: int) -> int:
    return lib.fs_host_has_new_bits(ffi.from_buffer(counts), ffi.from_buffer(virgin), counts.size, update)


def test_has_new_bits_edges_then_counts():
    size = 64
    virgin = np.full(size, 0xFF, dtype=np.uint8)
    run = np.zeros(size, dtype=np.uint8)
    assert _new_bits(run, virgin, 1) == 0, "an empty map is nothing new"

    run[[3, 9]] = [1, 5]
    assert _new_bits(run, virgin, 0) == 2, "a never-seen edge is new (2)"
    assert (virgin == 0xFF).all(), "update=0 leaves virgin alone"
    assert _new_bits(run, virgin, 1) == 2
    assert virgin[3] == 0xFF & ~1 and virgin[9] == 0xFF & ~8
    assert _new_bits(run, virgin, 1) == 0, "the same map again is nothing new"

    run[9] = 6  # same bucket (4-7)
    assert _new_bits(run, virgin, 1) == 0
    run[9] = 40  # new bucket of a known edge
    assert _new_bits(run, virgin, 1) == 1, "a new hit count of a known edge is new (1)"
    assert _new_bits(run, virgin, 1) == 0

    run[20] = 1
    run[9] = 2
    assert _new_bits(run, virgin, 1) == 2, "a new edge outranks a new count"


# ---- backend probes ----


def test_probe_unknown_backend():
    reason = ffi.new("char[64]")
    assert lib.fs_host_probe_backend(999, reason, 64) == -errno.EINVAL


def test_doctor_agrees_with_the_runtime(bins):
    """What doctor says about each backend is what a snapshot runner finds when it tries
    it (the runtime tracks pages for real, the probe only tries the kernel interface);
    the backend name the runner reports back is the one asked for, and auto picks
    doctor's auto_backend."""
    from forkserver.errors import BackendUnavailable
    from forkserver.executors import SnapshotExecutor
    from forkserver.target import Target

    rep = report()
    assert list(rep["backends"]) == ["pagemap-scan", "soft-dirty", "mprotect", "full-copy"]
    t = Target.from_command([str(bins["maze"])])
    try:
        for name, info in rep["backends"].items():
            assert info["reason"], f"{name}: doctor must always give a reason"
            if info["available"]:
                with SnapshotExecutor(t, 2000, cpu=None, backend=name) as sx:
                    assert sx.backend == name
                    assert sx.run(b"MAZE!EXIT").outcome.value == "ok"
            else:
                sx = SnapshotExecutor(t, 2000, cpu=None, backend=name)
                try:
                    with pytest.raises(BackendUnavailable, match="cannot work here") as exc:
                        sx.start()
                finally:
                    sx.close()
                assert info["reason"] in str(exc.value)
        with SnapshotExecutor(t, 2000, cpu=None, backend="auto") as sx:
            assert sx.backend == rep["auto_backend"]
    finally:
        t.cleanup()
    assert available_backends() == [n for n, b in rep["backends"].items() if b["available"]]


def test_portable_backends_always_available():
    assert probe_backend("mprotect")[0]
    assert probe_backend("full-copy")[0]


def _soft_dirty_works_here() -> bool:
    """An independent soft-dirty check: clear the bits, write a page, look at bit 55."""
    buf = mmap.mmap(-1, 4096)
    try:
        buf[0] = 1  # present before clearing
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("4")
        buf[1] = 2
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(addr // 4096 * 8)
            entry = struct.unpack("<Q", f.read(8))[0]
        return bool(entry >> 55 & 1)
    finally:
        buf.close()


def test_soft_dirty_probe_agrees_with_kernel():
    ok, reason = probe_backend("soft-dirty")
    assert ok == _soft_dirty_works_here()
    if not ok:
        assert "CONFIG_MEM_SOFT_DIRTY" in reason


def _kernel_at_least(major: int, minor: int) -> bool:
    parts = platform.release().split(".")
    return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)) >= (major, minor)


def test_pagemap_scan_probe_matches_kernel_and_privileges():
    ok, reason = probe_backend("pagemap-scan")
    try:
        unpriv = open("/proc/sys/vm/unprivileged_userfaultfd").read().strip() == "1"
    except OSError:
        unpriv = False
    if _kernel_at_least(6, 7) and (os.geteuid() == 0 or unpriv):
        assert ok, f"pagemap-scan should work on Linux {platform.release()} here: {reason}"
    if not ok:
        assert reason

"""The spawn bench: fork, vfork+exec, posix_spawn and clone timed from a parent of a
given RSS, next to a snapshot restore of a big_heap target of the same RSS."""
import mmap
import statistics
import time

from ..errors import ForkserverError
from .machine import PinnedCpu, bundled_harness, checkout_root, vm_rss_mb
from .modes import DEFAULT_TIMEOUT_MS, RSS_ENV
from .report import fmt_num, format_table, progress


SPAWN_PRIMITIVES = ["fork+exit+wait", "vfork+exec", "posix_spawn", "clone(VM|VFORK)"]  # fs_host_spawn_bench ids
SPAWN_DEFAULT_RSS_MB = [0, 64, 1024]
SPAWN_CHUNKS = 5
RESTORE_OPERATION = "snapshot restore"


class Ballast:
    """N MiB of private anonymous memory, every page touched, in this process."""

    def __init__(self, rss_mb: int):
        self.map = None
        if rss_mb:
            self.map = mmap.mmap(-1, rss_mb << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                                 prot=mmap.PROT_READ | mmap.PROT_WRITE)
            import numpy as np

            view = np.frombuffer(self.map, dtype=np.uint8)
            view[::mmap.PAGESIZE] = 1
            del view

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None


def time_primitive(primitive: int, iterations: int, budget_s: float, exec_path: str) -> dict:
    """Times one process-creation primitive with fs_host_spawn_bench.

    Args:
        primitive: index into SPAWN_PRIMITIVES.
        iterations: wanted operations (fewer when they would take longer than budget_s).
        budget_s: rough time budget for this primitive.
        exec_path: program the exec-style primitives run.
    Returns:
        {"us_per_op": median of SPAWN_CHUNKS chunk means, "us_min", "us_max", "iterations"}.
    """
    from ..native import check, ffi, lib

    ns = ffi.new("double *")
    path = exec_path.encode()
    check(lib.fs_host_spawn_bench(primitive, 1, path, ns), SPAWN_PRIMITIVES[primitive])  # warm-up and estimate
    fits = int(budget_s / max(ns[0] * 1e-9, 1e-7))
    per_chunk = max(1, min(iterations, fits) // SPAWN_CHUNKS)
    means = []
    for _ in range(SPAWN_CHUNKS):
        check(lib.fs_host_spawn_bench(primitive, per_chunk, path, ns), SPAWN_PRIMITIVES[primitive])
        means.append(ns[0] / 1000)
    return {"us_per_op": round(statistics.median(means), 2), "us_min": round(min(means), 2),
            "us_max": round(max(means), 2), "iterations": per_chunk * SPAWN_CHUNKS}


def time_restore(rss_mb: int, backend: str, seconds: float, cpu: int | None) -> dict:
    """Snapshot restore of the big_heap harness holding rss_mb MiB.

    Returns:
        {"us_per_op": restore_us p50, "us_min"/"us_max": p5/p95, "iterations",
        "dirty_pages_p50", "backend", "rss_measured_mb", "start_ms" (start-up: heap init,
        fork server, snapshot), "snapshot_us" (the snapshot alone)}, or {"error": ...}
        when the runner cannot start (a big heap can exceed FORKSERVER_INIT_TIMEOUT_MS).
    """
    from ..executors import SnapshotExecutor
    from ..inputs import read_inputs
    from ..target import Target

    inputs = [d for _, d in read_inputs(checkout_root() / "corpora" / "big_heap")]
    target = Target.from_command([str(bundled_harness("big_heap"))], env={RSS_ENV: str(rss_mb)})
    restore_us, dirty, execs = [], [], 0
    try:
        t0 = time.perf_counter()
        with SnapshotExecutor(target, DEFAULT_TIMEOUT_MS, cpu, backend=backend) as ex:
            start_ms = (time.perf_counter() - t0) * 1000
            rss = vm_rss_mb(ex.session.proc.pid)
            snapshot_us = ex.snapshot_us
            ex.run_batch(inputs * 4)  # warm-up
            t_end = time.perf_counter() + seconds
            while time.perf_counter() < t_end:
                for res in ex.run_batch(inputs * 32):
                    if res.restore_us is not None:
                        restore_us.append(res.restore_us)
                        dirty.append(res.dirty_pages)
                    execs += 1
            used = ex.backend
    except ForkserverError as exc:
        return {"error": str(exc), "backend": backend}
    finally:
        target.cleanup()
    if not restore_us:
        return {"error": "no input completed a restore", "backend": used}
    q = statistics.quantiles(restore_us, n=20) if len(restore_us) > 1 else restore_us * 19
    return {"us_per_op": round(statistics.median(restore_us), 2), "us_min": round(q[0], 2),
            "us_max": round(q[-1], 2), "iterations": execs, "dirty_pages_p50": statistics.median(dirty),
            "backend": used, "rss_measured_mb": round(rss, 1) if rss else None,
            "start_ms": round(start_ms, 1), "snapshot_us": round(snapshot_us, 1)}


def default_restore_backend() -> str:
    """pagemap-scan where it works (the restore DESIGN.md's table measures), else auto."""
    from ..doctor import probe_backend

    return "pagemap-scan" if probe_backend("pagemap-scan")[0] else "auto"


def run_spawn_bench(rss_list: list[int], iterations: int, budget_s: float, exec_path: str, backend: str,
                    cpu: int | None, with_restore: bool = True) -> list[dict]:
    """Times the process-creation primitives from a parent of each RSS, and a snapshot restore.

    Args:
        rss_list: ballast sizes in MiB.
        iterations: operations per primitive (capped by budget_s).
        budget_s: rough time per primitive, and the restore measurement's duration.
        exec_path: the program vfork+exec and posix_spawn run.
        backend: snapshot backend for the restore rows.
        cpu: CPU to pin to, or None.
        with_restore: also measure the snapshot restore of big_heap.
    Returns:
        One row per (rss, operation): rss_mb, rss_measured_mb, operation, us_per_op,
        us_min, us_max, iterations (and dirty_pages_p50, backend for restores).
    """
    rows = []
    with PinnedCpu(cpu):
        for rss_mb in rss_list:
            ballast = Ballast(rss_mb)
            try:
                parent_rss = vm_rss_mb()
                for i, name in enumerate(SPAWN_PRIMITIVES):
                    row = {"rss_mb": rss_mb, "rss_measured_mb": round(parent_rss, 1), "operation": name}
                    row.update(time_primitive(i, iterations, budget_s, exec_path))
                    rows.append(row)
                    progress(f"spawn: rss {rss_mb} MiB (parent {parent_rss:.0f} MiB): {name} "
                             f"{row['us_per_op']:,.1f} us")
            finally:
                ballast.close()
            if with_restore:
                row = {"rss_mb": rss_mb, "operation": RESTORE_OPERATION}
                row.update(time_restore(rss_mb, backend, budget_s, cpu))
                rows.append(row)
                if "error" in row:
                    progress(f"spawn: rss {rss_mb} MiB: snapshot restore failed: {row['error']}")
                else:
                    progress(f"spawn: rss {rss_mb} MiB: snapshot restore ({row['backend']}) "
                             f"{row['us_per_op']:,.1f} us, {row['dirty_pages_p50']:g} dirty pages")
    return rows


def spawn_table(rows: list[dict]) -> str:
    """Microseconds per operation: one line per RSS, one column per operation."""
    operations = list(dict.fromkeys(r["operation"] for r in rows))
    headers = ["rss_mb", "parent RSS"] + [f"{op} us" for op in operations] + ["dirty pages"]
    lines = []
    for rss_mb in dict.fromkeys(r["rss_mb"] for r in rows):
        by_op = {r["operation"]: r for r in rows if r["rss_mb"] == rss_mb}
        parent = next((r["rss_measured_mb"] for r in by_op.values() if r["operation"] != RESTORE_OPERATION), None)
        dirty = by_op.get(RESTORE_OPERATION, {}).get("dirty_pages_p50")
        cells = [fmt_num(by_op.get(op, {}).get("us_per_op"), 1) if "error" not in by_op.get(op, {}) else "error"
                 for op in operations]
        lines.append([str(rss_mb), fmt_num(parent)] + cells + [fmt_num(dirty)])
    return format_table(headers, lines)

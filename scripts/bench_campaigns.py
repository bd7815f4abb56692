#!/usr/bin/env python3
"""bench_campaigns.py measures campaigns of many workers, side by side in one run.

Parts (--parts, default all):
  scale     maze, --rounds rounds of --seconds each: `fuzz -j 1`, `fuzz -j 2` and
            `fuzz --ray ADDRESS -j 2` on a Ray cluster this script starts (`ray start
            --head`, so that the CPU time of Ray's own processes can be read from /proc).
            exec/s are the workers' own (execs over each worker's fuzzing time), so
            start-up is left out; ratios are taken within a round, then the median.
  sync      one `fuzz -j 2` run of --sync-seconds on ini_parser (finds keep coming
            there): the share of the workers' time spent importing peers' entries.
  messages  the coordinator actor's cost per message on a local Ray cluster: a
            worker's status report, a pull of new entries, a report of a saved entry,
            a crash claim; the base of the scale model in BENCHMARKS.md.

Usage: scripts/bench_campaigns.py [--parts scale,sync,messages] [--seconds 30] [--rounds 3]
                                  [--sync-seconds 600] [--json F]
Needs an installed forkserver with its ray extra (pip install -e '.[ray]').
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench_campaigns {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fuzz(args: list[str], out: Path, seconds: float) -> dict:
    """One `forkserver fuzz ... --json` run: its summary."""
    cmd = [sys.executable, "-m", "forkserver", "fuzz", "--plain", "--json", "--max-time", str(seconds), "-o", str(out),
           *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    stdout, stderr = proc.communicate(timeout=seconds + 300)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    return json.loads(stdout)


def worker_rate(summary: dict) -> float:
    """exec/s of the workers over their own fuzzing time (start-up left out)."""
    return sum(w.get("execs_per_sec", 0.0) for w in summary["workers"])


# ---- Ray's own processes ----

def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def ray_processes() -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds so far) of the Ray cluster's own processes and of the
    coordinator actor: long-lived, so sampling sees all they use. (Worker actors and
    their targets are left out: their runners come and go between samples.)"""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cpu = _cpu_seconds(int(entry.name))
        except OSError:
            continue
        if cmdline.startswith("ray::Worker") or ("/ray-" in cmdline and "/forkserver-" in cmdline):
            continue
        if cmdline.startswith("ray::Coordinator"):
            role = "coordinator"
        elif "ray" in cmdline and "bench_campaigns" not in cmdline and "forkserver fuzz" not in cmdline:
            role = "ray itself"
        else:
            continue
        out[int(entry.name)] = (role, cpu)
    return out


class CpuSampler:
    """The CPU seconds the Ray cluster's processes use while a with-block runs, by role.
    Sampled every half second in a thread: actors and targets exit before the end, and
    their last sample stands."""

    def __init__(self):
        import threading

        self.before = ray_processes()
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.last.update(ray_processes())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.last.update(ray_processes())

    def by_role(self) -> dict[str, float]:
        roles: dict[str, float] = {}
        for pid, (role, cpu) in self.last.items():
            start = self.before.get(pid, (role, 0.0))[1]
            roles[role] = round(roles.get(role, 0.0) + cpu - start, 2)
        return roles


class RayCluster:
    """`ray start --head` on this machine, for the length of a with-block."""

    def __init__(self, cpus: int):
        self.cpus = cpus
        self.address = ""

    def __enter__(self):
        port = 6390
        subprocess.run(["ray", "start", "--head", f"--port={port}", f"--num-cpus={self.cpus}",
                        "--include-dashboard=false", "--disable-usage-stats"], check=True, capture_output=True)
        self.address = "auto"  # the cluster this machine started (its address and authentication)
        time.sleep(2)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ray", "stop", "--force"], capture_output=True)


# ---- parts ----

def part_scale(work: Path, seconds: float, rounds: int) -> dict:
    harness = str(ROOT / "harnesses" / "maze.c")
    rows = []
    with RayCluster(cpus=len(os.sched_getaffinity(0))) as cluster:
        for r in range(rounds):
            row = {}
            for label, args in (("j1", ["-j", "1"]), ("j2", ["-j", "2"]),
                                ("ray_j2", ["--ray", cluster.address, "-j", "2"])):
                out = work / f"scale-{r}-{label}"
                with CpuSampler() as sampler:
                    summary = fuzz(args + [harness], out, seconds)
                row[label] = round(worker_rate(summary), 1)
                row[f"{label}_sync_share"] = round(summary["sync_seconds"] / max(summary["seconds"] * summary["jobs"],
                                                                                 1e-9), 5)
                if label == "ray_j2":
                    row["ray_cpu_seconds"] = sampler.by_role()
                    row["ray_wall_seconds"] = summary["seconds"]
                shutil.rmtree(out, ignore_errors=True)
                log(f"round {r + 1} {label}: {row[label]:,.0f} exec/s")
            row["j2_over_j1"] = round(row["j2"] / row["j1"], 3)
            row["ray_over_j2"] = round(row["ray_j2"] / row["j2"], 3)
            log(f"round {r + 1}: -j 2 / -j 1 = {row['j2_over_j1']}, --ray / -j 2 = {row['ray_over_j2']}; "
                f"CPU s during the Ray run: {row['ray_cpu_seconds']}")
            rows.append(row)
    return {"target": "maze", "seconds": seconds, "rounds": rows,
            "median_j2_over_j1": statistics.median(r["j2_over_j1"] for r in rows),
            "median_ray_over_j2": statistics.median(r["ray_over_j2"] for r in rows)}


def part_sync(work: Path, seconds: float) -> dict:
    out = work / "sync"
    summary = fuzz(["-j", "2", str(ROOT / "harnesses" / "ini_parser.c")], out, seconds)
    worker_seconds = sum(w["seconds"] for w in summary["workers"])
    share = summary["sync_seconds"] / worker_seconds
    corpus = [w["corpus"] for w in summary["workers"]]
    log(f"sync: {summary['sync_seconds']:.2f} s of {worker_seconds:.0f} worker-seconds importing "
        f"({100 * share:.3f}%), {summary['imported']} entries imported, corpora {corpus}")
    shutil.rmtree(out, ignore_errors=True)
    return {"target": "ini_parser", "seconds": seconds, "sync_seconds": summary["sync_seconds"],
            "worker_seconds": round(worker_seconds, 1), "share": round(share, 6), "imported": summary["imported"],
            "corpora": corpus, "execs_per_sec": summary["execs_per_sec"]}


def part_messages() -> dict:
    import numpy as np
    import ray

    from forkserver.monitor import Status
    from forkserver.ray_campaign import Coordinator

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=128 << 20)
    try:
        coordinator = ray.remote(num_cpus=0)(Coordinator).remote(["w0", "w1"], False)
        status = Status(mode="snapshot", backend="pagemap-scan", execs=10 ** 6, corpus=500, edges=3000)

        def per_call(fn, n: int) -> float:
            ray.get(fn(0))
            t0 = time.perf_counter()
            for i in range(n):
                ray.get(fn(i))
            return (time.perf_counter() - t0) / n * 1e6

        entry = os.urandom(1024)
        result = {
            "status_report_us": per_call(lambda i: coordinator.update.remote(1, status), 1000),
            "entry_report_1KiB_us": per_call(lambda i: coordinator.report.remote(1, "queue",
                                                                                  f"id:{i:06d},x", entry), 1000),
        }
        # a worker's pull when 1,000 entries of 1 KiB are new to it
        result["pull_1000_new_1KiB_us"] = per_call(lambda i: coordinator.pull.remote(0, 1), 50)
        result["pull_nothing_new_us"] = per_call(lambda i: coordinator.pull.remote(0, 1001), 1000)
        hits = np.arange(100, 400, dtype=np.uint32)
        result["crash_claim_us"] = per_call(lambda i: coordinator.claim_crash.remote(hits, 1 << 16, None), 500)
        t0 = time.perf_counter()
        ray.get([coordinator.update.remote(1, status) for _ in range(2000)])
        result["status_reports_pipelined_per_s"] = 2000 / (time.perf_counter() - t0)
        result = {k: round(v, 1) for k, v in result.items()}
        log(f"messages: {result}")
        return result
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="scale,sync,messages")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sync-seconds", type=float, default=600)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    parts = args.parts.split(",")
    results = {"date": time.strftime("%Y-%m-%d"), "cpus": len(os.sched_getaffinity(0)), "parts": parts}
    with tempfile.TemporaryDirectory(prefix="bench-campaigns-") as tmp:
        work = Path(tmp)
        if "messages" in parts:
            results["messages"] = part_messages()
        if "scale" in parts:
            results["scale"] = part_scale(work, args.seconds, args.rounds)
        if "sync" in parts:
            results["sync"] = part_sync(work, args.sync_seconds)
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench_cmplog.py: comparison feedback (input-to-state), forkserver fuzz against afl-fuzz -c.

Parts (--parts, default crash,cost):
  crash     magic_gates (two magics, a memcmp token, a strcmp keyword, then a crash), from
            its bundled seed, seeds 1 to 5:
              forkserver fuzz --cmplog                  time to the crash;
              forkserver fuzz without it                the same budget: reached or not;
              afl-fuzz -c 0 on an AFL_LLVM_CMPLOG build  afl-fuzz's own CMPLOG, one binary:
                                                        Debian's afl-fuzz 4.04c starts its cmplog
                                                        fork server from the plain target's path
                                                        when given two (-c CMPLOG_BINARY), so the
                                                        log stays empty;
            each row's median over the seeds. afl-fuzz runs with its default CPU binding.
  cost      maze: exec/s of forkserver fuzz with and without --cmplog, --seconds each,
            --trials rounds (the stage runs the cmplog build only on new entries); and
            `forkserver bench` (snapshot) on a plain build and on a cmplog build with logging
            off, side by side: what the hooks cost where one binary does both (-c 0).
  coverage  ini_parser for --coverage-seconds: forkserver fuzz --cmplog and afl-fuzz -c 0 (on
            an afl-clang-fast AFL_LLVM_CMPLOG persistent build) at the same time, each pinned to its own CPU;
            both queues are replayed through our plain build and their edges counted the
            same way.

Usage: scripts/bench_cmplog.py [--parts crash,cost,coverage] [--budget 120] [--rows LIST] [--seconds 20]
                               [--trials 3] [--coverage-seconds 600] [--json F]
Needs afl-fuzz and afl-clang-fast (apt-get install afl++) and an installed forkserver.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_afl  # noqa: E402  (run, read_fuzzer_stats, AFL_ENV, SHIM_DIR)
import bench_fuzz  # noqa: E402  (replay_edges, run_parts)

ROOT = bench_afl.ROOT
CORPORA = ROOT / "corpora"
SEEDS = range(1, 6)


def log(message: str) -> None:
    print(f"[bench_cmplog {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build(work: Path) -> dict[str, Path]:
    afl_cc = ["afl-clang-fast", "-O2", "-g", f"-I{bench_afl.SHIM_DIR}"]
    cmplog_env = {**os.environ, "AFL_LLVM_CMPLOG": "1"}
    out = {}
    for name, src, extra in (("magic", "magic_gates.c", []),
                             ("ini", "ini_parser.c", [bench_afl.SHIM_DIR / "ini_parser_persistent.c"])):
        out[f"{name}.afl"] = work / f"{name}.afl"
        out[f"{name}.afl-cmplog"] = work / f"{name}.afl-cmplog"
        out[f"{name}.fs"] = work / f"{name}.fs"
        out[f"{name}.fs-cmplog"] = work / f"{name}.fs-cmplog"
        bench_afl.run(afl_cc + [ROOT / "harnesses" / src, *extra, "-o", out[f"{name}.afl"]])
        bench_afl.run(afl_cc + [ROOT / "harnesses" / src, *extra, "-o", out[f"{name}.afl-cmplog"]], env=cmplog_env)
        bench_afl.run(["forkserver", "build", ROOT / "harnesses" / src, "-o", out[f"{name}.fs"]])
        bench_afl.run(["forkserver", "build", "--cmplog", ROOT / "harnesses" / src, "-o", out[f"{name}.fs-cmplog"]])
    for name, extra in (("maze.fs", []), ("maze.fs-cmplog", ["--cmplog"])):
        out[name] = work / name
        bench_afl.run(["forkserver", "build", *extra, ROOT / "harnesses/maze.c", "-o", out[name]])
    return out


def first_crash(crashes: Path) -> dict | None:
    found = sorted(p for p in crashes.glob("id:*")) if crashes.is_dir() else []
    if not found:
        return None
    name = found[0].name
    return {"found_s": int(name.split("time:")[1].split(",")[0]) / 1000,
            "execs": int(name.split("execs:")[1].split(",")[0]) if "execs:" in name else None}


def ours(targets: dict, seed: int, budget: float, work: Path, cmplog: bool) -> dict:
    out = Path(tempfile.mkdtemp(prefix="fs-magic-", dir=work))
    cmd = ["forkserver", "fuzz", "--plain", "-i", CORPORA / "magic_gates", "-o", out, "-s", str(seed),
           "--max-time", str(budget), "--exit-on-crash"]
    cmd += ["-c", targets["magic.fs-cmplog"]] if cmplog else []
    cmd += ["--", targets["magic.fs"]]
    subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=budget + 120)
    stats = bench_afl.read_fuzzer_stats(out / "default" / "fuzzer_stats")
    return {"seed": seed, "crash": first_crash(out / "default" / "crashes"), "execs_done": int(stats["execs_done"]),
            "execs_per_sec": float(stats["execs_per_sec"]), "command": " ".join(map(str, cmd))}


def theirs(targets: dict, seed: int, budget: float, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="afl-magic-", dir=work))
    env = {**os.environ, **bench_afl.AFL_ENV, "AFL_BENCH_UNTIL_CRASH": "1"}
    env.pop("AFL_NO_AFFINITY", None)
    cmd = ["afl-fuzz", "-i", str(CORPORA / "magic_gates"), "-o", str(out), "-s", str(seed), "-V", str(int(budget)),
           "-c", "0", "--", str(targets["magic.afl-cmplog"])]
    subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=budget + 120)
    stats = bench_afl.read_fuzzer_stats(out / "default" / "fuzzer_stats")
    return {"seed": seed, "crash": first_crash(out / "default" / "crashes"),
            "execs_done": int(stats.get("execs_done", 0)), "execs_per_sec": float(stats.get("execs_per_sec", 0)),
            "command": "AFL_BENCH_UNTIL_CRASH=1 " + " ".join(cmd)}


def median_found(rows: list[dict]) -> float | None:
    """The median time to the crash, a run that found none counting as never."""
    times = sorted(r["crash"]["found_s"] if r["crash"] else float("inf") for r in rows)
    m = statistics.median(times)
    return None if m == float("inf") else m


def part_crash(targets: dict, args, work: Path) -> dict:
    wanted = args.rows.split(",")
    rows = {name: [] for name in wanted}
    for seed in SEEDS:
        for name, run in (("ours_cmplog", lambda: ours(targets, seed, args.budget, work, True)),
                          ("afl_cmplog", lambda: theirs(targets, seed, args.budget, work)),
                          ("ours_plain", lambda: ours(targets, seed, args.budget, work, False))):
            if name not in wanted:
                continue
            row = run()
            rows[name].append(row)
            found = f"crash after {row['crash']['found_s']:.2f} s" if row["crash"] else f"no crash in {args.budget} s"
            log(f"magic_gates seed {seed}, {name}: {found} ({row['execs_done']} execs)")
    return {"budget_s": args.budget, "runs": rows,
            "median_found_s": {name: median_found(r) for name, r in rows.items()},
            "found": {name: sum(1 for x in r if x["crash"]) for name, r in rows.items()}}


def part_cost(targets: dict, args, work: Path) -> dict:
    rounds = []
    for trial in range(args.trials):
        row = {}
        for name, extra in (("plain", []), ("cmplog", ["--cmplog"])):
            out = Path(tempfile.mkdtemp(prefix="fs-maze-", dir=work))
            cmd = ["forkserver", "fuzz", "--plain", "-i", CORPORA / "maze", "-o", out, "-s", str(trial + 1),
                   "--max-time", str(args.seconds), *extra, "--", ROOT / "harnesses/maze.c"]
            bench_afl.run(cmd, timeout=args.seconds + 300)
            stats = bench_afl.read_fuzzer_stats(out / "default" / "fuzzer_stats")
            row[name] = float(stats["execs_per_sec"])
        row["ratio"] = row["cmplog"] / row["plain"]
        out = work / f"bench-maze-{trial}.json"
        bench_afl.run(["forkserver", "bench", "--modes", "snapshot", "--backends", "pagemap-scan", "--no-c-loop",
                       "--seconds", "3", "--trials", "3", "-i", CORPORA / "maze", "--json", out, "--",
                       targets["maze.fs"]])
        row["bench_plain"] = float(json.loads(out.read_text())["rows"][0]["execs_per_sec"])
        bench_afl.run(["forkserver", "bench", "--modes", "snapshot", "--backends", "pagemap-scan", "--no-c-loop",
                       "--seconds", "3", "--trials", "3", "-i", CORPORA / "maze", "--json", out, "--",
                       targets["maze.fs-cmplog"]])
        row["bench_cmplog_off"] = float(json.loads(out.read_text())["rows"][0]["execs_per_sec"])
        row["bench_ratio"] = row["bench_cmplog_off"] / row["bench_plain"]
        log(f"maze round {trial + 1}: fuzz {row['plain']:.0f} exec/s plain, {row['cmplog']:.0f} with --cmplog "
            f"({row['ratio']:.3f}x); bench {row['bench_plain']:.0f} plain build, {row['bench_cmplog_off']:.0f} "
            f"cmplog build, logging off ({row['bench_ratio']:.3f}x)")
        rounds.append(row)
    return {"seconds": args.seconds, "rounds": rounds, "median_ratio": statistics.median(r["ratio"] for r in rounds),
            "median_bench_ratio": statistics.median(r["bench_ratio"] for r in rounds)}


def part_coverage(targets: dict, args, work: Path) -> dict:
    s = args.coverage_seconds
    log(f"coverage: both fuzzers with comparison feedback on ini_parser for {s} s, each on its own CPU")
    ours_out = Path(tempfile.mkdtemp(prefix="fs-cov-", dir=work))
    theirs_out = Path(tempfile.mkdtemp(prefix="afl-cov-", dir=work))
    env = {**os.environ, **bench_afl.AFL_ENV, "AFL_NO_AFFINITY": "1"}
    them = subprocess.Popen(["taskset", "-c", "1", "afl-fuzz", "-i", str(CORPORA / "ini_parser"), "-o", str(theirs_out),
                             "-V", str(s), "-c", "0", "--", str(targets["ini.afl-cmplog"])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    us = subprocess.Popen(["forkserver", "fuzz", "--plain", "--cpu", "0", "-s", "1", "-i", str(CORPORA / "ini_parser"),
                           "-o", str(ours_out), "--max-time", str(s), "-c", str(targets["ini.fs-cmplog"]), "--",
                           str(targets["ini.fs"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    us.wait()
    them.wait()
    row = {"seconds": s,
           "ours_edges": bench_fuzz.replay_edges(targets["ini.fs"], ours_out / "default" / "queue"),
           "theirs_edges": bench_fuzz.replay_edges(targets["ini.fs"], theirs_out / "default" / "queue"),
           "ours_stats": bench_afl.read_fuzzer_stats(ours_out / "default" / "fuzzer_stats"),
           "theirs_execs": int(bench_afl.read_fuzzer_stats(theirs_out / "default" / "fuzzer_stats")["execs_done"])}
    log(f"  edges: forkserver fuzz --cmplog {row['ours_edges']}, afl-fuzz -c {row['theirs_edges']}")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="crash,cost")
    ap.add_argument("--budget", type=float, default=120, help="crash: seconds each run may take")
    ap.add_argument("--rows", default="ours_cmplog,afl_cmplog,ours_plain", help="crash: which fuzzers")
    ap.add_argument("--seconds", type=float, default=20, help="cost: seconds per campaign")
    ap.add_argument("--trials", type=int, default=3, help="cost: rounds")
    ap.add_argument("--coverage-seconds", type=int, default=600)
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-cmplog-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"building in {work}")
    targets = build(work)
    report = {"date": time.strftime("%Y-%m-%d")}
    bench_fuzz.run_parts({"crash": part_crash, "cost": part_cost, "coverage": part_coverage},
                         args.parts.split(","), report, targets, args, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())

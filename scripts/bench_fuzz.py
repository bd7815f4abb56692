#!/usr/bin/env python3
"""bench_fuzz.py measures `forkserver fuzz` against afl-fuzz, side by side in one run.

Parts (--parts, default all but coverage):
  rates     exec/s of whole campaigns of --seconds each, sequentially, every fuzzer with
            its default CPU binding:
              ini_parser  forkserver fuzz (snapshot) / afl-fuzz on an afl-clang-fast
                          persistent build (no reset) / afl-fuzz on an afl-clang-fast
                          fork-server build;
              big_heap    at BIG_HEAP_MB=1024: forkserver fuzz (snapshot) / afl-fuzz on an
                          afl-clang-fast fork-server build;
              maze        forkserver fuzz (snapshot) / `forkserver bench` snapshot rate on
                          the same build: the fuzzer's own share of the engine's speed.
  crash     time for forkserver fuzz to find the maze crash, over 5 seeds (median).
  crashy    a target that crashes on a tenth of its inputs (tests/harnesses/crash_tenth.c):
            exec/s in snapshot and fork mode, against the same target with its crashes
            switched off, and what each crash costs.
  asan      ASan builds of ini_parser and maze: forkserver fuzz (snapshot) / afl-fuzz on
            an afl-clang-fast -fsanitize=address persistent build (maze's: main in an
            __AFL_LOOP, scripts/afl/maze_persistent.c); for ini_parser also against the
            persistent build that passes each input in an exact-size heap copy, as
            libFuzzer and our driver do (-DHEAP_COPY). --trials rounds; the median ratio.
  coverage  ini_parser for --coverage-seconds, --coverage-trials times: forkserver fuzz
            and afl-fuzz (persistent build) run at the same time, each pinned to its own
            CPU; both queues are then replayed through our build, and the edges they
            reach are counted the same way.

            --trials rounds (default 3), each ratio taken within its round; the median.

Usage: scripts/bench_fuzz.py [--parts rates,crash,crashy,asan,coverage] [--seconds 20] [--trials 3] [--json F]
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
import bench_afl  # noqa: E402  (run, afl_fuzz, read_fuzzer_stats, SHIM_DIR)

ROOT = bench_afl.ROOT
CORPORA = ROOT / "corpora"
BIG_HEAP_ENV = {"BIG_HEAP_MB": "1024"}


def log(message: str) -> None:
    print(f"[bench_fuzz {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build(work: Path) -> dict[str, Path]:
    afl_cc = ["afl-clang-fast", "-O2", "-g", f"-I{bench_afl.SHIM_DIR}"]
    out = {name: work / name for name in ("ini.fs", "ini.afl-persistent", "ini.afl-fork", "big_heap.fs",
                                          "big_heap.afl", "maze.fs")}
    bench_afl.run(afl_cc + [ROOT / "harnesses/ini_parser.c", bench_afl.SHIM_DIR / "ini_parser_persistent.c",
                            "-o", out["ini.afl-persistent"]])
    bench_afl.run(afl_cc + [ROOT / "harnesses/ini_parser.c", bench_afl.SHIM_DIR / "libfuzzer_fork_driver.c",
                            "-o", out["ini.afl-fork"]])
    bench_afl.run(afl_cc + [ROOT / "harnesses/big_heap.c", "-o", out["big_heap.afl"]])
    for h, name in (("ini_parser", "ini.fs"), ("big_heap", "big_heap.fs"), ("maze", "maze.fs")):
        bench_afl.run(["forkserver", "build", ROOT / "harnesses" / f"{h}.c", "-o", out[name]])
    return out


def our_fuzz(binary: Path, corpus: Path, seconds: float, work: Path, env: dict | None = None,
             extra: list | None = None) -> dict:
    out = Path(tempfile.mkdtemp(prefix="fs-out-", dir=work))
    cmd = ["forkserver", "fuzz", "--plain", "-i", corpus, "-o", out, "--max-time", seconds, *(extra or []),
           "--", binary]
    bench_afl.run(cmd, env={**os.environ, **(env or {})}, timeout=seconds + 300)
    stats = bench_afl.read_fuzzer_stats(out / "default" / "fuzzer_stats")
    return {"execs_per_sec": float(stats["execs_per_sec"]), "execs_done": int(stats["execs_done"]),
            "corpus_count": int(stats["corpus_count"]), "mode": stats["target_mode"], "out": str(out),
            "command": " ".join(f"{k}={v}" for k, v in (env or {}).items()) + " " + " ".join(map(str, cmd))}


def their_fuzz(binary: Path, corpus: Path, seconds: int, work: Path, env: dict | None = None) -> dict:
    row = bench_afl.afl_fuzz(binary, corpus, int(seconds), work, env or {}, no_affinity=False)
    if "error" in row:
        raise SystemExit(f"bench_fuzz: {row['error']}")
    return row


def bench_snapshot_rate(binary: Path, corpus: Path, seconds: float, work: Path) -> float:
    out = work / "bench-maze.json"
    bench_afl.run(["forkserver", "bench", "--modes", "snapshot", "--backends", "pagemap-scan", "--no-c-loop",
                   "--seconds", seconds, "--trials", "3", "-i", corpus, "--json", out, "--", binary])
    (row,) = json.loads(out.read_text())["rows"]
    return float(row["execs_per_sec"])


def rates_trial(targets: dict, s: float, work: Path) -> dict:
    rows = {}
    log("ini_parser: forkserver fuzz, snapshot")
    rows["ini_fs"] = our_fuzz(targets["ini.fs"], CORPORA / "ini_parser", s, work)
    log("ini_parser: afl-fuzz, persistent build")
    rows["ini_afl_persistent"] = their_fuzz(targets["ini.afl-persistent"], CORPORA / "ini_parser", s, work)
    log("ini_parser: afl-fuzz, fork-server build")
    rows["ini_afl_fork"] = their_fuzz(targets["ini.afl-fork"], CORPORA / "ini_parser", s, work)
    log("big_heap 1 GiB: forkserver fuzz, snapshot")
    rows["big_fs"] = our_fuzz(targets["big_heap.fs"], CORPORA / "big_heap", s, work, BIG_HEAP_ENV,
                              ["-t", "5000"])
    log("big_heap 1 GiB: afl-fuzz, fork-server build")
    rows["big_afl_fork"] = their_fuzz(targets["big_heap.afl"], CORPORA / "big_heap", s, work,
                                      {**BIG_HEAP_ENV, "AFL_MAP_SIZE": "65536"})
    log("maze: forkserver fuzz and forkserver bench, snapshot")
    rows["maze_fs"] = our_fuzz(targets["maze.fs"], CORPORA / "maze", s, work)
    rows["maze_bench_execs_per_sec"] = bench_snapshot_rate(targets["maze.fs"], CORPORA / "maze", max(2, s / 6), work)
    ours = rows["ini_fs"]["execs_per_sec"]
    rows["ratios"] = {
        "ini: fuzz snapshot / afl-fuzz persistent": ours / rows["ini_afl_persistent"]["execs_per_sec"],
        "ini: fuzz snapshot / afl-fuzz fork server": ours / rows["ini_afl_fork"]["execs_per_sec"],
        "big_heap 1 GiB: fuzz snapshot / afl-fuzz fork server":
            rows["big_fs"]["execs_per_sec"] / rows["big_afl_fork"]["execs_per_sec"],
        "maze: fuzz / bench snapshot": rows["maze_fs"]["execs_per_sec"] / rows["maze_bench_execs_per_sec"],
    }
    return rows


def part_rates(targets: dict, args, work: Path) -> dict:
    """--trials rounds of every row, one after the other (each round in the same order),
    so that the machine's drift falls on both sides of each ratio alike; each ratio is
    taken within its round, and the median over the rounds is reported."""
    trials = []
    for k in range(args.trials):
        log(f"rates: round {k + 1} of {args.trials}")
        trials.append(rates_trial(targets, args.seconds, work))
    return {"trials": trials, **ratio_summary(trials)}


def ratio_summary(trials: list[dict]) -> dict:
    """The median and the range over the rounds of each ratio a round took ("ratios")."""
    names = trials[0]["ratios"]
    return {"median_ratios": {n: statistics.median(t["ratios"][n] for t in trials) for n in names},
            "ratio_ranges": {n: [min(t["ratios"][n] for t in trials), max(t["ratios"][n] for t in trials)]
                             for n in names}}


def part_crash(targets: dict, args, work: Path) -> dict:
    times = []
    for seed in range(1, 6):
        out = Path(tempfile.mkdtemp(prefix="fs-crash-", dir=work))
        t0 = time.monotonic()
        proc = subprocess.run(["forkserver", "fuzz", "--plain", "-i", CORPORA / "maze", "-o", out, "-s", str(seed),
                               "--max-time", "600", "--exit-on-crash", "--", targets["maze.fs"]],
                              capture_output=True, text=True)
        wall = time.monotonic() - t0
        crashes = sorted((out / "default" / "crashes").glob("id:*"))
        if proc.returncode != 77 or not crashes:
            raise SystemExit(f"bench_fuzz: seed {seed} found no crash: {proc.stderr[-500:]}")
        found_ms = int(crashes[0].name.split("time:")[1].split(",")[0])
        execs = int(crashes[0].name.split("execs:")[1].split(",")[0])
        times.append({"seed": seed, "found_s": found_ms / 1000, "execs": execs, "wall_s": round(wall, 2)})
        log(f"maze seed {seed}: crash after {found_ms / 1000:.2f} s, {execs} execs")
    return {"runs": times, "median_found_s": statistics.median(t["found_s"] for t in times),
            "median_execs": statistics.median(t["execs"] for t in times)}


def part_crashy(targets: dict, args, work: Path) -> dict:
    binary = work / "crash_tenth.fs"
    bench_afl.run(["forkserver", "build", ROOT / "tests/harnesses/crash_tenth.c", "-o", binary])
    seeds = work / "crashy-seeds"
    seeds.mkdir(exist_ok=True)
    (seeds / "a").write_bytes(b"hello")
    out = {}
    for mode in ("snapshot", "fork"):
        for crashes in (True, False):
            log(f"crash_tenth, {mode} mode, crashes {'on' if crashes else 'off'}")
            row = our_fuzz(binary, seeds, args.seconds, work, None if crashes else {"CRASH_TENTH_OFF": "1"},
                           ["--mode", mode])
            out[f"{mode}_{'crashing' if crashes else 'clean'}"] = row
        crashing, clean = out[f"{mode}_crashing"]["execs_per_sec"], out[f"{mode}_clean"]["execs_per_sec"]
        # a tenth of the runs crash: the extra time per run, over 0.1, is what one crash costs
        out[f"{mode}_us_per_crash"] = (1e6 / crashing - 1e6 / clean) / 0.1
        out[f"{mode}_crashing_vs_clean"] = crashing / clean
    return out


def part_asan(targets: dict, args, work: Path) -> dict:
    afl_asan = ["afl-clang-fast", "-O2", "-g", "-fsanitize=address", f"-I{bench_afl.SHIM_DIR}"]
    bins = {name: work / name for name in ("ini.asan.fs", "ini.asan.afl-persistent", "ini.asan.afl-persistent-copy",
                                           "maze.asan.fs", "maze.asan.afl-persistent")}
    bench_afl.run(["forkserver", "build", ROOT / "harnesses/ini_parser.c", "--sanitize", "address", "-o",
                   bins["ini.asan.fs"]])
    bench_afl.run(afl_asan + [ROOT / "harnesses/ini_parser.c", bench_afl.SHIM_DIR / "ini_parser_persistent.c",
                              "-o", bins["ini.asan.afl-persistent"]])
    # the same driver passing each input in an exact-size heap copy, as ours and libFuzzer do
    bench_afl.run(afl_asan + ["-DHEAP_COPY", ROOT / "harnesses/ini_parser.c",
                              bench_afl.SHIM_DIR / "ini_parser_persistent.c", "-o", bins["ini.asan.afl-persistent-copy"]])
    bench_afl.run(["forkserver", "build", ROOT / "harnesses/maze.c", "--sanitize", "address", "-o",
                   bins["maze.asan.fs"]])
    maze_object = work / "maze.asan.o"
    bench_afl.run(afl_asan + ["-Dmain=maze_main", "-c", ROOT / "harnesses/maze.c", "-o", maze_object])
    bench_afl.run(afl_asan + [bench_afl.SHIM_DIR / "maze_persistent.c", maze_object, "-o",
                              bins["maze.asan.afl-persistent"]])
    rounds = []
    for k in range(args.trials):
        log(f"asan: round {k + 1} of {args.trials}")
        rounds.append(asan_round(bins, args.seconds, work))
    out = {"trials": rounds, **ratio_summary(rounds)}
    for name, value in out["median_ratios"].items():
        log(f"ASan {name}: median {value:.2f}x over {args.trials} rounds, range "
            f"{out['ratio_ranges'][name][0]:.2f}-{out['ratio_ranges'][name][1]:.2f}")
    return out


def asan_round(bins: dict, seconds: float, work: Path) -> dict:
    """One round: each harness's fuzz rate against afl-fuzz's, one after the other."""
    out = {}
    for harness, key in (("ini_parser", "ini"), ("maze", "maze")):
        log(f"{harness} ASan: forkserver fuzz, snapshot")
        ours = our_fuzz(bins[f"{key}.asan.fs"], CORPORA / harness, seconds, work)
        log(f"{harness} ASan: afl-fuzz, persistent build")
        theirs = their_fuzz(bins[f"{key}.asan.afl-persistent"], CORPORA / harness, seconds, work)
        out[harness] = {"ours": ours, "theirs_persistent": theirs,
                        "ratio": ours["execs_per_sec"] / theirs["execs_per_sec"]}
        log(f"{harness} ASan: forkserver fuzz / afl-fuzz persistent = {out[harness]['ratio']:.2f}x")
        if key == "ini":
            log(f"{harness} ASan: afl-fuzz, persistent build with a heap copy of each input")
            copy = their_fuzz(bins["ini.asan.afl-persistent-copy"], CORPORA / harness, seconds, work)
            out[harness]["theirs_persistent_heap_copy"] = copy
            out[harness]["ratio_vs_heap_copy"] = ours["execs_per_sec"] / copy["execs_per_sec"]
            log(f"{harness} ASan: forkserver fuzz / afl-fuzz persistent with a heap copy = "
                f"{out[harness]['ratio_vs_heap_copy']:.2f}x")
    out["ratios"] = {f"{harness} {name}": row[name] for harness, row in out.items()
                     for name in ("ratio", "ratio_vs_heap_copy") if name in row}
    return out


def replay_edges(binary: Path, queue: Path) -> int:
    """Edges (map indices) reached by every entry of a queue, run through one build."""
    code = f"""
import json, numpy as np
from pathlib import Path
from forkserver.target import Target
from forkserver.executors import SnapshotExecutor
seen = set()
with Target.from_command([{str(binary)!r}]) as t, SnapshotExecutor(t, 2000) as ex:
    for p in sorted(Path({str(queue)!r}).iterdir()):
        if p.is_file() and p.name.startswith("id:"):
            r = ex.run(p.read_bytes(), keep_map=True)
            seen.update(r.coverage.edge_ids.tolist())
print(json.dumps(len(seen)))
"""
    return json.loads(bench_afl.run([sys.executable, "-c", code]).stdout.strip().splitlines()[-1])


def part_coverage(targets: dict, args, work: Path) -> dict:
    trials = []
    s = args.coverage_seconds
    for trial in range(args.coverage_trials):
        log(f"coverage trial {trial + 1}: both fuzzers for {s} s, each on its own CPU")
        ours_out = Path(tempfile.mkdtemp(prefix="fs-cov-", dir=work))
        theirs_out = Path(tempfile.mkdtemp(prefix="afl-cov-", dir=work))
        env = {**os.environ, **bench_afl.AFL_ENV, "AFL_NO_AFFINITY": "1"}
        theirs = subprocess.Popen(["taskset", "-c", "1", "afl-fuzz", "-i", str(CORPORA / "ini_parser"), "-o",
                                   str(theirs_out), "-V", str(s), "--", str(targets["ini.afl-persistent"])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        ours = subprocess.Popen(["forkserver", "fuzz", "--plain", "--cpu", "0", "-s", str(trial + 1), "-i",
                                 str(CORPORA / "ini_parser"), "-o", str(ours_out), "--max-time", str(s), "--",
                                 str(targets["ini.fs"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours.wait()
        theirs.wait()
        row = {"ours_edges": replay_edges(targets["ini.fs"], ours_out / "default" / "queue"),
               "theirs_edges": replay_edges(targets["ini.fs"], theirs_out / "default" / "queue"),
               "ours_execs": int(bench_afl.read_fuzzer_stats(ours_out / "default" / "fuzzer_stats")["execs_done"]),
               "theirs_execs": int(bench_afl.read_fuzzer_stats(theirs_out / "default" / "fuzzer_stats")
                                   ["execs_done"])}
        log(f"  edges: forkserver fuzz {row['ours_edges']}, afl-fuzz {row['theirs_edges']}")
        trials.append(row)
    return {"seconds": s, "trials": trials,
            "median_ours_edges": statistics.median(t["ours_edges"] for t in trials),
            "median_theirs_edges": statistics.median(t["theirs_edges"] for t in trials)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="rates,crash,crashy,asan")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--trials", type=int, default=3, help="rates and asan: rounds of every row (median ratio)")
    ap.add_argument("--coverage-seconds", type=int, default=600)
    ap.add_argument("--coverage-trials", type=int, default=3)
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args()
    parts = args.parts.split(",")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"building in {work}")
    targets = build(work)
    report = {"date": time.strftime("%Y-%m-%d"), "seconds": args.seconds}
    run_parts({"rates": part_rates, "crash": part_crash, "crashy": part_crashy, "asan": part_asan,
               "coverage": part_coverage}, parts, report, targets, args, work)
    return 0


def run_parts(parts_by_name: dict, names: list[str], report: dict, targets: dict, args, work: Path) -> None:
    """Runs the named parts in order into report, saving it (--json) after each, and prints it."""
    for part in names:
        report[part] = parts_by_name[part](targets, args, work)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench_afl.py puts afl-fuzz's exec/s next to forkserver's on the same harnesses, in one run.

Two comparisons, each on one harness:
  maze        fork servers: afl-fuzz on an afl-clang-fast build, afl-fuzz on our build
              (fork mode), and `forkserver bench` fork and snapshot modes (driving our
              build, and the afl-clang-fast build as an extra row);
  ini_parser  no reset vs full reset: afl-fuzz on an afl-clang-fast persistent-mode build
              (scripts/afl/ini_parser_persistent.c), afl-fuzz on our `build --afl-snapshot`
              build (snapshot mode, the runner answering afl-fuzz; to afl-fuzz it is a
              persistent target), the same with FORKSERVER_AFL_DIRECT=0 (the runner
              stopped and continued by the server), and `forkserver bench` snapshot mode.
Every afl-fuzz run lasts --seconds (-V) and runs twice: with afl-fuzz's default CPU
binding and with AFL_NO_AFFINITY=1; --rounds repeats them (the ratios are per round,
then their median). exec/s is execs_per_sec from fuzzer_stats, with its stability.

Usage: scripts/bench_afl.py [--seconds 20] [--bench-seconds 2] [--trials 3] [--rounds 1]
                            [--parts maze,ini,bench] [--workdir DIR] [--json F]
Needs afl-fuzz and afl-clang-fast (apt-get install afl++) and an installed forkserver.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIM_DIR = ROOT / "scripts" / "afl"
AFL_ENV = {"AFL_NO_UI": "1", "AFL_SKIP_CPUFREQ": "1", "AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES": "1"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\(B")
CORE_RETRIES = 3
SNAPSHOT_ENV = {"FORKSERVER_MODE": "snapshot", "FORKSERVER_BACKEND": "pagemap-scan"}


def log(message: str) -> None:
    print(f"[bench_afl {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd: list, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Runs cmd, raising with its output's tail when it fails."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"bench_afl: {' '.join(map(str, cmd))} failed ({proc.returncode}):\n{tail}")
    return proc


def build_targets(work: Path) -> dict[str, Path]:
    """The four binaries: maze and ini_parser, each as an afl-clang-fast and a forkserver build.

    Returns:
        name -> path: maze.afl, maze.fs, ini_parser.afl-persistent, ini_parser.fs.
    """
    out = {
        "maze.afl": work / "maze.afl",
        "maze.fs": work / "maze.fs",
        "ini_parser.afl-persistent": work / "ini_parser.afl-persistent",
        "ini_parser.fs": work / "ini_parser.fs",
        "ini_parser.fs-snapshot": work / "ini_parser.fs-snapshot",
    }
    afl_cc = ["afl-clang-fast", "-O2", "-g", f"-I{SHIM_DIR}"]  # the shim header replaces forkserver.h
    run(afl_cc + [ROOT / "harnesses/maze.c", "-o", out["maze.afl"]])
    run(afl_cc + [ROOT / "harnesses/ini_parser.c", SHIM_DIR / "ini_parser_persistent.c",
                  "-o", out["ini_parser.afl-persistent"]])
    run(["forkserver", "build", ROOT / "harnesses/maze.c", "-o", out["maze.fs"]])
    run(["forkserver", "build", ROOT / "harnesses/ini_parser.c", "-o", out["ini_parser.fs"]])
    run(["forkserver", "build", "--afl-snapshot", ROOT / "harnesses/ini_parser.c", "-o", out["ini_parser.fs-snapshot"]])
    return out


def read_fuzzer_stats(path: Path) -> dict[str, str]:
    """afl-fuzz's `key : value` stats file as a dict."""
    stats = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        stats[key.strip()] = value.strip()
    return stats


def afl_fuzz(binary: Path, corpus: Path, seconds: int, work: Path, extra_env: dict, no_affinity: bool) -> dict:
    """One afl-fuzz run of `seconds`; returns execs_per_sec and friends from fuzzer_stats."""
    out = Path(tempfile.mkdtemp(prefix="afl-out-", dir=work))
    env = dict(os.environ)
    env.pop("AFL_NO_AFFINITY", None)
    env.update(AFL_ENV)
    env.update(extra_env)
    if no_affinity:
        env["AFL_NO_AFFINITY"] = "1"
    cmd = ["afl-fuzz", "-i", str(corpus), "-o", str(out), "-V", str(seconds), "--", str(binary)]
    for attempt in range(CORE_RETRIES):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
        if "No more free CPU cores" not in proc.stdout + proc.stderr:
            break
        log("  afl-fuzz found no free CPU core (other processes are pinned to every core); retry in 10s")
        time.sleep(10)
    stats_path = out / "default" / "fuzzer_stats"
    if not stats_path.exists():
        text = ANSI.sub("", proc.stdout + proc.stderr)
        reason = next((line.split("PROGRAM ABORT :")[1].strip() for line in text.splitlines()
                       if "PROGRAM ABORT" in line), text.strip().splitlines()[-1] if text.strip() else "?")
        return {"error": f"afl-fuzz exited {proc.returncode}: {reason}"}
    stats = read_fuzzer_stats(stats_path)
    bound = next((line.split("core #")[1].split()[0] for line in proc.stdout.splitlines()
                  if "core #" in line and "bind" in line.lower()), None)
    return {
        "execs_per_sec": float(stats.get("execs_per_sec", "nan")),
        "execs_done": int(stats.get("execs_done", "0")),
        "run_time_s": int(stats.get("run_time", "0") or 0),
        "saved_crashes": int(stats.get("saved_crashes", stats.get("unique_crashes", "0")) or 0),
        "stability": stats.get("stability"),
        "bound_core": bound,
        "command": " ".join([f"{k}={v}" for k, v in sorted(extra_env.items())]
                            + (["AFL_NO_AFFINITY=1"] if no_affinity else []) + cmd),
    }


def forkserver_bench(binary_source: Path, corpus: Path, afl_binary: Path, args, work: Path) -> list[dict]:
    """`forkserver bench --json` on one harness, with the afl-clang-fast build as an extra row."""
    out = work / f"bench-{binary_source.stem}.json"
    run(["forkserver", "bench", "--modes", "fork,snapshot", "--backends", "pagemap-scan", "--no-c-loop",
         "--seconds", str(args.bench_seconds), "--trials", str(args.trials), "--afl-target", afl_binary,
         "-i", corpus, "--json", out, "--", binary_source])
    return json.loads(out.read_text())["rows"]


def afl_rows(targets: dict[str, Path], args, work: Path) -> list[dict]:
    """Every afl-fuzz run: the setups of --parts, each with default binding and
    AFL_NO_AFFINITY=1, --rounds times."""
    setups = []
    if "maze" in args.parts:
        setups += [("maze", "afl-clang-fast", "fork server", targets["maze.afl"], {}),
                   ("maze", "forkserver runtime", "fork", targets["maze.fs"], {})]
    if "ini" in args.parts:
        snapshot = targets["ini_parser.fs-snapshot"]
        setups += [("ini_parser", "afl-clang-fast", "persistent (__AFL_LOOP 10000)",
                    targets["ini_parser.afl-persistent"], {}),
                   ("ini_parser", "forkserver runtime", "snapshot (--afl-snapshot)", snapshot, {}),
                   ("ini_parser", "forkserver runtime", "snapshot, FORKSERVER_AFL_DIRECT=0", snapshot,
                    {"FORKSERVER_AFL_DIRECT": "0"})]
    rows = []
    for round_no in range(1, args.rounds + 1):
        for harness, build, mode, binary, env in setups:
            for no_affinity in (False, True):
                label = f"{harness} {build} {mode} {'AFL_NO_AFFINITY=1' if no_affinity else 'bound'}"
                log(f"round {round_no}: afl-fuzz {label} for {args.seconds}s")
                res = afl_fuzz(binary, ROOT / "corpora" / harness, args.seconds, work, env, no_affinity)
                rows.append({"harness": harness, "build": build, "mode": mode, "driver": "afl-fuzz", "round": round_no,
                             "affinity": "AFL_NO_AFFINITY=1" if no_affinity else "afl-fuzz binds a free core", **res})
                log(f"  -> {res.get('execs_per_sec', res.get('error'))} (stability {res.get('stability')})")
    return rows


def bench_rows(targets: dict[str, Path], args, work: Path) -> list[dict]:
    """forkserver bench rows for both harnesses, as side-by-side table rows."""
    rows = []
    for harness, afl_key in (("maze", "maze.afl"), ("ini_parser", "ini_parser.afl-persistent")):
        log(f"forkserver bench on {harness}")
        for r in forkserver_bench(ROOT / "harnesses" / f"{harness}.c", ROOT / "corpora" / harness,
                                  targets[afl_key], args, work):
            build = "afl-clang-fast" if r["build"] == "afl++" else "forkserver runtime"
            mode = r["mode"] + (f"/{r['backend']}" if r["backend"] else "")
            rows.append({"harness": harness, "build": build, "mode": mode, "driver": "forkserver bench",
                         "affinity": "pinned to one CPU (--cpu auto)", "execs_per_sec": r["execs_per_sec"],
                         "execs_per_sec_min": r["execs_per_sec_min"], "execs_per_sec_max": r["execs_per_sec_max"]})
    return rows


def table(rows: list[dict]) -> str:
    """The side-by-side table."""
    headers = ["harness", "build", "mode", "driver", "affinity", "round", "exec/s", "stability"]
    lines = [[r["harness"], r["build"], r["mode"], r["driver"], r["affinity"], str(r.get("round", "")),
              f"{r['execs_per_sec']:,.0f}" if r.get("execs_per_sec") is not None else "error (below)",
              r.get("stability") or ""]
             for r in rows]
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i >= 5 else c.ljust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(x) for x in lines])


def pick(rows, **want) -> float | None:
    """exec/s of the first row whose fields equal want."""
    for r in rows:
        if all(r.get(k) == v for k, v in want.items()) and r.get("execs_per_sec"):
            return r["execs_per_sec"]
    return None


def ratios(rows: list[dict]) -> list[str]:
    """The comparisons DESIGN.md's goals are stated in, once per afl-fuzz affinity setting."""
    out = []
    our_fork = pick(rows, harness="maze", build="forkserver runtime", driver="forkserver bench", mode="fork")
    our_snap = pick(rows, harness="maze", build="forkserver runtime", driver="forkserver bench",
                    mode="snapshot/pagemap-scan")
    ours_bench = pick(rows, harness="ini_parser", build="forkserver runtime", driver="forkserver bench",
                      mode="snapshot/pagemap-scan")
    rounds = sorted({r["round"] for r in rows if r.get("round")})
    for affinity, name in (("afl-fuzz binds a free core", "bound"), ("AFL_NO_AFFINITY=1", "AFL_NO_AFFINITY=1")):
        per_round = {}
        for mode in ("snapshot (--afl-snapshot)", "snapshot, FORKSERVER_AFL_DIRECT=0"):
            per_round[mode] = [ours / afl for ours, afl in (
                (pick(rows, harness="ini_parser", mode=mode, affinity=affinity, round=n),
                 pick(rows, harness="ini_parser", build="afl-clang-fast", affinity=affinity, round=n))
                for n in rounds) if ours and afl]
        for mode, values in per_round.items():
            if values:
                out.append(f"ini_parser, both under afl-fuzz ({name}): our {mode} / AFL++ persistent = "
                           f"{statistics.median(values):.2f}x median of {len(values)} "
                           f"({', '.join(f'{v:.2f}x' for v in values)}) (goal >= 1x)")
        afl_persistent = pick(rows, harness="ini_parser", build="afl-clang-fast", driver="afl-fuzz", affinity=affinity)
        afl_fork = pick(rows, harness="maze", build="afl-clang-fast", driver="afl-fuzz", affinity=affinity)
        if afl_persistent and ours_bench:
            out.append(f"ini_parser: forkserver bench snapshot / afl-fuzz ({name}) on AFL++ persistent = "
                       f"{ours_bench / afl_persistent:.2f}x")
        if afl_fork and our_fork:
            out.append(f"maze: forkserver bench fork / afl-fuzz ({name}) fork server = {our_fork / afl_fork:.2f}x")
        if afl_fork and our_snap:
            out.append(f"maze: forkserver bench snapshot / afl-fuzz ({name}) fork server = "
                       f"{our_snap / afl_fork:.2f}x")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="afl-fuzz run time (-V) per run")
    parser.add_argument("--bench-seconds", type=float, default=2.0, help="forkserver bench seconds per trial")
    parser.add_argument("--trials", type=int, default=3, help="forkserver bench trials")
    parser.add_argument("--workdir", help="where builds and afl-fuzz output go (default: a temp dir, removed)")
    parser.add_argument("--json", help="write every row as JSON here")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the afl-fuzz runs this many times")
    parser.add_argument("--parts", default="maze,ini,bench",
                        help="comma-separated: maze, ini (the afl-fuzz runs), bench (forkserver bench rows)")
    args = parser.parse_args()
    args.parts = set(args.parts.split(","))
    for tool in ("afl-fuzz", "afl-clang-fast", "forkserver"):
        if not shutil.which(tool):
            raise SystemExit(f"bench_afl: {tool} not found (apt-get install afl++; pip install -e .)")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="forkserver-bench-afl-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        log(f"building into {work}")
        targets = build_targets(work)
        rows = afl_rows(targets, args, work) + (bench_rows(targets, args, work) if "bench" in args.parts else [])
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    rows.sort(key=lambda r: (r["harness"] != "maze", r.get("round", 0), r["build"], r["driver"]))
    print(table(rows))
    for r in rows:
        if r.get("error"):
            print(f"{r['harness']} {r['build']} {r['mode']} ({r['affinity']}): {r['error']}")
    for line in ratios(rows):
        print(line)
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": os.uname().release,
                "afl_fuzz_seconds": args.seconds, "bench_seconds": args.bench_seconds, "trials": args.trials,
                "rounds": args.rounds, "parts": sorted(args.parts),
                "command_line": " ".join(sys.argv)}
        Path(args.json).write_text(json.dumps({**meta, "rows": rows, "ratios": ratios(rows)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

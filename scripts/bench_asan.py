#!/usr/bin/env python3
"""bench_asan.py: ASan builds of maze and ini_parser, side by side in one run.

For each harness:
  afl-fuzz    on an `afl-clang-fast -fsanitize=address` build (its fork server), with
              afl-fuzz's own CPU binding and with AFL_NO_AFFINITY=1; exec/s from
              fuzzer_stats;
  forkserver  `forkserver bench` on our `forkserver build --sanitize address` build, fork
              and snapshot modes, with the afl-clang-fast build as an extra fork row.
Then the ratios the goals are stated in: our fork mode / afl-fuzz's fork server, and our
snapshot mode / our fork mode.

Usage: scripts/bench_asan.py [--seconds 20] [--bench-seconds 2] [--trials 3]
                             [--backends pagemap-scan,mprotect] [--workdir DIR] [--json F]
Needs afl-fuzz and afl-clang-fast (apt-get install afl++), clang's sanitizer runtimes
(libclang-rt-14-dev) and an installed forkserver.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_afl  # noqa: E402  (shares its afl-fuzz runner and table)

ROOT = bench_afl.ROOT
HARNESSES = ("maze", "ini_parser")
LIBFUZZER_HARNESSES = ("ini_parser",)  # built for AFL++ with scripts/afl/libfuzzer_fork_driver.c


def build_targets(work: Path) -> dict[str, Path]:
    out = {}
    for h in HARNESSES:
        out[f"{h}.afl"] = work / f"{h}.asan.afl"
        out[f"{h}.fs"] = work / f"{h}.asan.fs"
        driver = [bench_afl.SHIM_DIR / "libfuzzer_fork_driver.c"] if h in LIBFUZZER_HARNESSES else []
        bench_afl.run(["afl-clang-fast", "-O2", "-g", "-fsanitize=address", f"-I{bench_afl.SHIM_DIR}",
                       ROOT / "harnesses" / f"{h}.c", *driver, "-o", out[f"{h}.afl"]])
        bench_afl.run(["forkserver", "build", ROOT / "harnesses" / f"{h}.c", "--sanitize", "address",
                       "-o", out[f"{h}.fs"]])
    return out


def bench_rows(harness: str, targets: dict[str, Path], args, work: Path) -> list[dict]:
    out = work / f"bench-{harness}.json"
    bench_afl.run(["forkserver", "bench", "--modes", "fork,snapshot", "--backends", args.backends, "--no-c-loop",
                   "--seconds", str(args.bench_seconds), "--trials", str(args.trials),
                   "--afl-target", targets[f"{harness}.afl"], "-i", ROOT / "corpora" / harness,
                   "--json", out, "--", targets[f"{harness}.fs"]])
    rows = []
    for r in json.loads(out.read_text())["rows"]:
        rows.append({"harness": harness, "build": "afl-clang-fast" if r["build"] == "afl++" else "forkserver runtime",
                     "mode": r["mode"] + (f"/{r['backend']}" if r["backend"] else ""), "driver": "forkserver bench",
                     "affinity": "pinned to one CPU (--cpu auto)", "execs_per_sec": r["execs_per_sec"],
                     "execs_per_sec_min": r["execs_per_sec_min"], "execs_per_sec_max": r["execs_per_sec_max"],
                     "restore_us_p50": r.get("restore_us_p50"), "dirty_pages_p50": r.get("dirty_pages_p50"), "exec_us_p50": r.get("exec_us_p50")})
    return rows


def ratios(rows: list[dict], backends: list[str]) -> list[str]:
    out = []
    for h in HARNESSES:
        ours_fork = bench_afl.pick(rows, harness=h, build="forkserver runtime", mode="fork")
        for affinity, name in (("afl-fuzz binds a free core", "bound"), ("AFL_NO_AFFINITY=1", "AFL_NO_AFFINITY=1")):
            afl = bench_afl.pick(rows, harness=h, driver="afl-fuzz", affinity=affinity)
            if afl and ours_fork:
                out.append(f"{h}: our fork / afl-fuzz's fork server ({name}) = {ours_fork / afl:.2f}x (goal >= 0.8x)")
        for b in backends:
            snap = bench_afl.pick(rows, harness=h, build="forkserver runtime", mode=f"snapshot/{b}")
            if snap and ours_fork:
                out.append(f"{h}: our snapshot/{b} / our fork = {snap / ours_fork:.2f}x (goal >= 10x)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20, help="length of each afl-fuzz run")
    ap.add_argument("--bench-seconds", type=float, default=2)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--backends", default="pagemap-scan,mprotect")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-asan-"))
    work.mkdir(parents=True, exist_ok=True)
    bench_afl.log(f"building into {work}")
    targets = build_targets(work)
    rows = []
    for h in HARNESSES:
        for no_affinity in (False, True):
            bench_afl.log(f"afl-fuzz {h} (ASan) {'AFL_NO_AFFINITY=1' if no_affinity else 'bound'} for {args.seconds}s")
            res = bench_afl.afl_fuzz(targets[f"{h}.afl"], ROOT / "corpora" / h, args.seconds, work, {}, no_affinity)
            rows.append({"harness": h, "build": "afl-clang-fast", "mode": "fork server", "driver": "afl-fuzz",
                         "affinity": "AFL_NO_AFFINITY=1" if no_affinity else "afl-fuzz binds a free core", **res})
            bench_afl.log(f"  -> {res.get('execs_per_sec', res.get('error'))}")
        bench_afl.log(f"forkserver bench on {h} (ASan)")
        rows += bench_rows(h, targets, args, work)
    print(bench_afl.table(rows))
    lines = ratios(rows, args.backends.split(","))
    print("\n".join(lines))
    if args.json:
        source = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                         "source": source, "rows": rows, "ratios": lines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

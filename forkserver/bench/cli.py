"""`forkserver bench` and `forkserver bench spawn` on the command line: arguments, the
bundled default target, and writing the results."""
import argparse
import os
import shlex
import sys
from pathlib import Path

from ..errors import UsageError
from .machine import bundled_harness, default_corpus, machine_metadata
from .modes import (DEFAULT_BATCH, DEFAULT_SECONDS, DEFAULT_TIMEOUT_MS, DEFAULT_TRIALS, DEFAULT_WARMUP_S,
                    EXEC_TRIAL_CAP_S, MODE_ORDER, RSS_ENV, BenchPlan, default_specs, loop_ratios, mode_table,
                    run_mode_bench)
from .report import progress, write_csv, write_json
from .spawn import SPAWN_DEFAULT_RSS_MB, default_restore_backend, run_spawn_bench, spawn_table




def parse_int_list(text: str, what: str) -> list[int]:
    """Parses "0,64,1024" into [0, 64, 1024].

    Raises:
        UsageError: an item is not a non-negative integer.
    """
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what} takes comma-separated whole numbers, not {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UsageError(f"{what} takes comma-separated whole numbers >= 0, not {text!r}")
    return values


def parse_name_list(text: str, allowed: list[str], what: str) -> list[str]:
    """Parses "fork,snapshot" and checks every name against allowed.

    Raises:
        UsageError: an unknown name.
    """
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UsageError(f"{what}: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(allowed)}")
    return names


def add_bench_parser(sub) -> None:
    """Adds `bench` (modes side by side) and `bench spawn` to the CLI's subparsers."""
    p = sub.add_parser("bench", help="exec/s of each mode side by side",
                       description="Runs the same inputs through each mode and backend; with no target, "
                                   "the bundled harnesses/maze.c on corpora/maze.")
    p.add_argument("--modes", metavar="LIST",
                   help=f"comma list from {','.join(MODE_ORDER)} (default: all the target supports)")
    p.add_argument("--backends", metavar="LIST",
                   help="snapshot backends (default: every one `forkserver doctor` finds working)")
    p.add_argument("--rss-mb", metavar="LIST",
                   help="ballast sizes in MiB, set in the target's environment (see --rss-env), e.g. 0,64,1024")
    p.add_argument("--rss-env", default=RSS_ENV, metavar="NAME",
                   help="environment variable that sets the ballast size")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="S",
                   help=f"duration of one trial per row (exec mode: at most {EXEC_TRIAL_CAP_S:g}s)")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS, metavar="N",
                   help="trials per row (median and min..max)")
    p.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, metavar="S", help="warm-up seconds per row")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N", help="snapshot mode: inputs per wake-up")
    p.add_argument("--c-loop", action=argparse.BooleanOptionalAction, default=True,
                   help="also drive fork and snapshot from the C loops (Python overhead check)")
    p.add_argument("--afl-target", action="append", default=[], metavar="BIN",
                   help="an afl-clang-fast build of the same harness, measured as extra rows")
    p.add_argument("--cpu", default="auto", metavar="N|none|auto",
                   help="CPU to pin the orchestrator and targets to (auto: the idlest CPU over 0.3 s)")
    p.add_argument("-t", dest="timeout_ms", type=int, default=DEFAULT_TIMEOUT_MS, metavar="MS",
                   help="timeout per input")
    p.add_argument("-i", dest="input", metavar="INPUTS", help="input file or directory (default: corpora/<harness>/)")
    p.add_argument("--json", metavar="F", help="write the results as JSON to F (- for stdout)")
    p.add_argument("--csv", metavar="F", help="write the rows as CSV to F (- for stdout)")
    p.add_argument("--plot", metavar="F", help="plot exec/s against RSS to F (PNG; needs matplotlib)")
    p.set_defaults(func=cli_bench, bench_command=None)

    bench_sub = p.add_subparsers(dest="bench_command", metavar="{spawn}")
    s = bench_sub.add_parser("spawn", help="process-creation cost against parent RSS, next to a snapshot restore")
    s.add_argument("--rss-mb", dest="spawn_rss_mb", metavar="LIST", default=",".join(map(str, SPAWN_DEFAULT_RSS_MB)),
                   help="parent sizes in MiB (e.g. 0,64,1024,4096)")
    s.add_argument("--iterations", type=int, default=200, metavar="N",
                   help="operations per primitive (capped by --seconds)")
    s.add_argument("--seconds", dest="spawn_seconds", type=float, default=1.0, metavar="S",
                   help="time budget per primitive and for each restore measurement")
    s.add_argument("--exec-path", default="/bin/true", metavar="PATH", help="program for vfork+exec and posix_spawn")
    s.add_argument("--backend", metavar="NAME",
                   help="snapshot backend for the restore rows (default: pagemap-scan where it works, else auto)")
    s.add_argument("--no-restore", action="store_true", help="skip the snapshot restore rows")
    s.add_argument("--cpu", dest="spawn_cpu", default="auto", metavar="N|none|auto",
                   help="CPU to pin to (auto: the idlest)")
    s.add_argument("--json", dest="spawn_json", metavar="F", help="write the results as JSON to F (- for stdout)")
    s.add_argument("--csv", dest="spawn_csv", metavar="F", help="write the rows as CSV to F (- for stdout)")
    s.add_argument("--plot", dest="spawn_plot", metavar="F", help="plot us per operation against RSS to F (PNG)")


def _cpu_arg(value: str) -> int | None:
    """--cpu: N, none, or auto (the idlest allowed CPU over 0.3 s: a busy neighbour pinned
    to one CPU would halve every number)."""
    from ..cpu import choose_cpu

    return choose_cpu(value, sample_s=0.3)


def _check_plot_available(path: str | None) -> None:
    if path:
        from ..plot import require_matplotlib

        require_matplotlib()


def _emit(text: str, json_dest: str | None) -> None:
    """Human output goes to stderr when stdout carries the JSON."""
    print(text, file=sys.stderr if json_dest == "-" else sys.stdout)


def _command_line(args, command: list[str]) -> str:
    """A command line that reproduces this run."""
    parts = ["forkserver", "bench"]
    if args.modes:
        parts += ["--modes", args.modes]
    if args.backends:
        parts += ["--backends", args.backends]
    if args.rss_mb is not None:
        parts += ["--rss-mb", args.rss_mb]
    parts += ["--seconds", f"{args.seconds:g}", "--trials", str(args.trials),
              "--warmup", f"{args.warmup:g}", "--batch", str(args.batch), "--cpu", args.cpu]
    if not args.c_loop:
        parts.append("--no-c-loop")
    for afl in args.afl_target:
        parts += ["--afl-target", afl]
    if args.input:
        parts += ["-i", args.input]
    return shlex.join(parts + (["--", *command] if command else []))


def build_plan(args, command: list[str]) -> BenchPlan:
    """Turns the parsed options into a BenchPlan (resolving the default target and inputs).

    Raises:
        UsageError: bad option values, or no inputs.
    """
    from ..doctor import available_backends
    from ..executors import BACKENDS
    from ..inputs import read_inputs
    from ..target import Target

    if args.seconds <= 0 or args.trials < 1 or args.warmup < 0 or args.batch < 1:
        raise UsageError("--seconds must be > 0, --trials and --batch >= 1, --warmup >= 0")
    if args.timeout_ms < 1:
        raise UsageError(f"-t takes a timeout of at least 1 ms, not {args.timeout_ms}")
    if not command:
        command = [str(bundled_harness("maze"))]
    inputs_path = Path(args.input) if args.input else default_corpus(command)
    if inputs_path is None:
        raise UsageError("give the inputs with -i FILE_OR_DIR (no corpora/<name>/ found for this target)")
    inputs = [data for _, data in read_inputs(inputs_path)]
    modes = parse_name_list(args.modes, MODE_ORDER, "--modes") if args.modes else None
    backends = parse_name_list(args.backends, BACKENDS, "--backends") if args.backends else available_backends()
    if args.rss_mb is not None:
        rss = parse_int_list(args.rss_mb, "--rss-mb")
    else:  # leave the environment alone; report the ballast it asks for, if any
        inherited = os.environ.get(args.rss_env, "0")
        rss = [int(inherited)] if inherited.isdigit() else [0]
    probe = Target.from_command(command)  # builds a source once, and reads the markers
    probe.cleanup()
    if args.rss_mb is not None and args.rss_env.encode() not in probe.path.read_bytes():
        progress(f"warning: {probe.path.name} does not mention {args.rss_env}: --rss-mb may change nothing")
    return BenchPlan(command=command, inputs_path=inputs_path, inputs=inputs,
                     specs=default_specs(probe.info, modes, backends, args.c_loop),
                     afl_targets=list(args.afl_target), rss_mb=rss, rss_env=args.rss_env,
                     set_rss_env=args.rss_mb is not None, seconds=args.seconds,
                     trials=args.trials, warmup_s=args.warmup, batch=args.batch, cpu=_cpu_arg(args.cpu),
                     timeout_ms=args.timeout_ms)


def cli_bench(args, command) -> int:
    """`forkserver bench` and `forkserver bench spawn`.

    Args:
        args: the parsed options (see add_bench_parser).
        command: the target command line after `--` (empty: the bundled maze harness).
    Returns:
        The exit code: 0, or 1 when some row failed.
    """
    if args.bench_command == "spawn":
        return cli_bench_spawn(args, command)
    _check_plot_available(args.plot)
    plan = build_plan(args, command)
    rows = run_mode_bench(plan)
    report = {
        "command": "bench",
        **machine_metadata(plan.cpu),
        "command_line": _command_line(args, command),
        "target": plan.command,
        "inputs": str(plan.inputs_path),
        "input_count": len(plan.inputs),
        "rss_env": plan.rss_env,
        "seconds_per_trial": plan.seconds,
        "exec_seconds_per_trial": min(plan.seconds, EXEC_TRIAL_CAP_S),
        "warmup_seconds": plan.warmup_s,
        "trials": plan.trials,
        "batch": plan.batch,
        "notes": "execs_per_sec is the median over trials; execs and seconds are totals over all trials; "
                 "ratio_vs_fork divides by the python-driven fork row of the same rss_mb",
        "rows": rows,
    }
    _emit(mode_table(rows), args.json)
    for line in loop_ratios(rows):
        _emit(line, args.json)
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(rows, args.csv)
    if args.plot:
        from ..plot import plot_modes

        plot_modes(rows, args.plot, title=f"exec/s by mode: {Path(plan.command[0]).name}")
    return 1 if any(r.get("error") for r in rows) else 0


def cli_bench_spawn(args, command) -> int:
    """`forkserver bench spawn`: process creation against parent RSS, next to a restore."""
    if command:
        raise UsageError("`bench spawn` takes no target")
    if args.iterations < 1 or args.spawn_seconds <= 0:
        raise UsageError("--iterations must be >= 1 and --seconds > 0")
    _check_plot_available(args.spawn_plot)
    rss = parse_int_list(args.spawn_rss_mb, "--rss-mb")
    cpu = _cpu_arg(args.spawn_cpu)
    backend = args.backend or default_restore_backend()
    rows = run_spawn_bench(rss, args.iterations, args.spawn_seconds, args.exec_path, backend, cpu,
                           with_restore=not args.no_restore)
    parts = ["forkserver", "bench", "spawn", "--rss-mb", args.spawn_rss_mb, "--iterations", str(args.iterations),
             "--seconds", f"{args.spawn_seconds:g}", "--backend", backend, "--cpu", args.spawn_cpu]
    report = {
        "command": "bench spawn",
        **machine_metadata(cpu),
        "command_line": shlex.join(parts + (["--no-restore"] if args.no_restore else [])),
        "exec_path": args.exec_path,
        "notes": "us_per_op: median of chunk means (spawn) or p50 (restore); us_min/us_max: chunk min/max "
                 "(spawn) or p5/p95 (restore); rss_measured_mb: VmRSS of the parent (spawn) or of the "
                 "big_heap fork server (restore)",
        "rows": rows,
    }
    _emit(spawn_table(rows), args.spawn_json)
    for row in rows:
        if "error" in row:
            _emit(f"rss {row['rss_mb']} MiB, {row['operation']}: {row['error']}", args.spawn_json)
    if args.spawn_json:
        write_json(report, args.spawn_json)
    if args.spawn_csv:
        write_csv(rows, args.spawn_csv)
    if args.spawn_plot:
        from ..plot import plot_spawn

        plot_spawn(rows, args.spawn_plot, title="process creation vs snapshot restore, by RSS")
    return 1 if any("error" in r for r in rows) else 0

"""The `forkserver` command line."""
import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .errors import ForkserverError, UsageError

HUMAN_BUCKET = [0, 1, 2, 3] + [4] * 4 + [5] * 8 + [6] * 16 + [7] * 96 + [8] * 128  # afl-showmap's scale


def _split_target(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _cpu(value: str | None) -> int | None:
    from .cpu import choose_cpu

    return choose_cpu(value)


def _timeout_ms(value: int) -> int:
    if value < 1:
        raise UsageError(f"-t takes a timeout of at least 1 ms, not {value}")
    return value


def _add_exec_options(p: argparse.ArgumentParser, modes: list[str]) -> None:
    p.add_argument("--mode", default="auto", choices=modes, help="how to reset the target between inputs")
    p.add_argument("--backend", default="auto", help="snapshot backend (see `forkserver doctor`)")
    p.add_argument("-t", dest="timeout_ms", type=int, default=1000, metavar="MS", help="timeout per input")
    p.add_argument("--cpu", default="auto", help="CPU to pin the orchestrator and target to (N, auto, none)")
    p.add_argument("--verify-restore", action="store_true",
                   help="snapshot mode: compare all restorable state with the snapshot after each input")
    p.add_argument("--detect-leaks", action="store_true",
                   help="sanitizer builds: LeakSanitizer checks after each input; a leak is a crash")


def _target(command: list[str], args=None):
    from .target import Target

    target = Target.from_command(command)
    target.detect_leaks = bool(getattr(args, "detect_leaks", False))
    return target


def _note(text: str) -> None:
    print(f"forkserver: note: {text}", file=sys.stderr)


class _ResultStream:
    """Writes results as they come, so that memory stays flat however many inputs run:
    one JSON object ({"target", "results": [...], then the totals}) or text lines."""

    def __init__(self, as_json: bool, target: str):
        self.as_json, self.count = as_json, 0
        if as_json:
            sys.stdout.write('{"target": %s, "results": [' % json.dumps(target))

    def add(self, row: dict) -> None:
        if self.as_json:
            sys.stdout.write(("," if self.count else "") + "\n" + json.dumps(row))
        else:
            how = f"signal {row['signal']}" if row["signal"] else f"exit {row['exit_code']}"
            extra = f" dirty={row['dirty_pages']} restore={row.get('restore_us')}us" if row["dirty_pages"] is not None else ""
            print(f"{row['input']:<24} {row['outcome']:<8} {how:<10} edges={row['edges']} "
                  f"hash={row['map_hash']} {row['exec_us']}us{extra}" + (f"  {row['detail']}" if "detail" in row else "")
                  + (f"  [{row['sanitizer']}]" if "sanitizer" in row else ""))
        self.count += 1

    def finish(self, totals: dict) -> None:
        if self.as_json:
            sys.stdout.write("\n], " + json.dumps(totals)[1:] + "\n")
        else:
            print(f"{totals['execs']} execs in {totals['seconds']:.3f}s: {totals['execs_per_sec']} exec/s "
                  f"({totals['mode']}{', ' + totals['backend'] if totals['backend'] else ''})")


def _check_exec_options(args) -> tuple[int, int | None]:
    """Validates the options every executing command shares: (timeout_ms, cpu)."""
    if args.backend != "auto" and args.mode not in ("snapshot", "auto"):
        raise UsageError(f"--backend {args.backend} needs --mode snapshot (or auto); --mode {args.mode} has no "
                         "snapshot backend")
    return _timeout_ms(args.timeout_ms), _cpu(args.cpu)


def cmd_run(args, command) -> int:
    import numpy as np

    from .executors import make_executor
    from .inputs import read_inputs

    if args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    timeout_ms, cpu = _check_exec_options(args)
    inputs = read_inputs(args.input, on_skip=_note)
    total = len(inputs) * args.repeat
    # the schedule as indices into inputs: 4 bytes an input, whatever the count
    order = np.random.default_rng(args.seed).permutation(total) % len(inputs) if args.shuffle else None
    with _target(command, args) as target:
        executor = make_executor(args.mode, target, timeout_ms, args.backend, cpu, args.verify_restore)
        with executor:
            stream = _ResultStream(args.json, str(target.path))
            seconds = 0.0
            for start in range(0, total, args.batch):
                idx = (order[start:start + args.batch].tolist() if order is not None
                       else [i % len(inputs) for i in range(start, min(start + args.batch, total))])
                t0 = time.perf_counter()
                results = executor.run_batch([inputs[i][1] for i in idx]) if args.batch > 1 else \
                    [executor.run(inputs[idx[0]][1])]
                seconds += time.perf_counter() - t0
                for i, r in zip(idx, results):
                    stream.add(r.as_json(inputs[i][0]))
    stream.finish({
        "mode": executor.mode,
        "backend": executor.backend if executor.mode == "snapshot" else None,
        "execs": stream.count,
        "seconds": round(seconds, 6),
        "execs_per_sec": round(stream.count / seconds, 1) if seconds > 0 else None,
    })
    return 0


def cmd_showmap(args, command) -> int:
    from .executors import make_executor
    from .inputs import read_inputs

    timeout_ms, cpu = _check_exec_options(args)
    (name, data), = read_inputs(args.input, on_skip=_note)[:1]
    with _target(command, args) as target:
        with make_executor(args.mode, target, timeout_ms, args.backend, cpu) as executor:
            result = executor.run(data, keep_map=True)
    counts = result.coverage.counts
    scale = (lambda c: c) if args.raw else HUMAN_BUCKET.__getitem__
    lines = [f"{i:06d}:{scale(int(counts[i]))}" for i in result.coverage.edge_ids]
    text = "\n".join(lines) + ("\n" if lines else "")
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    print(f"{len(lines)} edges, outcome {result.outcome.value}", file=sys.stderr)
    return 0 if result.outcome.value == "ok" else 2


def _default_seeds(source: Path) -> Path | None:
    """The bundled corpus of a bundled harness: harnesses/NAME.c -> corpora/NAME."""
    candidate = source.resolve().parent.parent / "corpora" / source.stem
    return candidate if candidate.is_dir() else None


def _fresh_output(stem: str) -> Path:
    base = Path("fuzz-out") / stem
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stem}-{n}")
    return path


def cmd_fuzz(args, command) -> int:
    from .inputs import read_inputs
    from .mutators import load_dictionary

    if args.target and command:
        raise UsageError("give the target either after `--` or as the only argument, not both")
    command = command or ([args.target] if args.target else [])
    if not command:
        raise UsageError("no target given: `forkserver fuzz -i SEEDS -o OUT -- TARGET [ARGS]`")
    if args.batch < 1 or args.batch > 1024:
        raise UsageError("--batch takes 1 to 1024 inputs per wake-up")
    for name in ("max_time", "runs"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    timeout_ms, cpu = _check_exec_options(args)
    _check_sync_options(args)
    if args.hang_timeout is not None and args.hang_timeout < timeout_ms:
        raise UsageError(f"--hang-timeout {args.hang_timeout} is shorter than -t {timeout_ms}: a hang is "
                         "confirmed with a longer timeout")
    resume = args.resume or args.input == "-"
    seeds_dir = args.input
    source = Path(command[0])
    if seeds_dir is None and not resume:
        seeds_dir = _default_seeds(source) if source.suffix in (".c", ".cc", ".cpp") else None
        if seeds_dir is None:
            raise UsageError("no seeds given: -i DIR (or -i - to resume an output directory)")
    out = Path(args.output) if args.output else _fresh_output(source.stem)
    tokens = []
    for d in args.dict or []:
        tokens += load_dictionary(d)
    seeds = None if resume else read_inputs(seeds_dir, on_skip=_note)
    if resume and args.input not in (None, "-"):
        _note(f"resuming {out}: the seeds in {args.input} are not read again")
    target = _target(command, args)  # a bad target is refused before anything is written
    if args.jobs is not None or args.ray is not None:
        with target:
            status, summary = _parallel_campaign(args, command, target, timeout_ms, out, resume, seeds, seeds_dir,
                                                 tokens)
        if args.json:
            print(json.dumps(summary))
        return status
    with target:
        input_to_state = _input_to_state_stage(args, command, target, timeout_ms, cpu) if args.cmplog else None
        try:
            status, fuzzer = _fuzz_campaign(args, command, target, timeout_ms, cpu, out, resume, seeds, seeds_dir,
                                            tokens, input_to_state)
        finally:
            if input_to_state is not None:
                input_to_state.close()
    if args.json:
        print(json.dumps(fuzzer.summary))
    return status


def _check_sync_options(args) -> None:
    if args.main_name and args.secondary_name:
        raise UsageError("-M and -S name one instance: give one of them")
    for name in (args.main_name, args.secondary_name):
        if name is not None and (not name or name.startswith(".") or "/" in name or "," in name):
            raise UsageError(f"-M/-S take a plain directory name (no '/', ',' or leading '.'), not {name!r}")
    if (args.main_name or args.secondary_name) and args.name != "default":
        raise UsageError("-M/-S name the instance: drop --name")
    if args.jobs is not None:
        if args.jobs < 1:
            raise UsageError(f"-j takes a number of workers of at least 1, not {args.jobs}")
        if args.cpu not in ("auto", "none"):
            raise UsageError("-j pins each worker to its own CPU: --cpu takes auto or none with -j")
        if args.name != "default":
            raise UsageError("-j names its workers main, w1, w2...: use -M NAME or -S NAME for other names")
    if args.ray is not None:
        from .ray_campaign import import_ray

        import_ray()  # says how to install it
        if args.name != "default":
            raise UsageError("--ray names its workers main, w1, w2...: use -M NAME or -S NAME for other names")


def _parallel_campaign(args, command, target, timeout_ms, out, resume, seeds, seeds_dir, tokens):
    """-j N: the workers' specs, their directories checked and made before any starts."""
    from .cpu import allowed_cpus, worker_cpus
    from .monitor import make_monitor
    from .objectives import hang_timeout_for
    from .outdir import OutputDir
    from .parallel import ParallelCampaign, WorkerSpec, worker_names

    if args.ray is not None and args.jobs is None:
        args.jobs = _ray_cluster_cpus(args.ray)
    names = worker_names(args.jobs, args.main_name, args.secondary_name)
    cpus = worker_cpus(args.jobs) if args.cpu == "auto" and args.ray is None else [None] * args.jobs
    cmplog = args.cmplog if args.cmplog in (None, "0") else _cmplog_binary(args.cmplog, command)
    created_out = not out.exists()
    made = []
    try:
        for name, _ in names:
            if not (out / name).exists():
                made.append(out / name)
            OutputDir.open(out, name, resume=resume)
    except ForkserverError:
        _remove_unused_instances(made, out if created_out else None)
        raise
    if args.cpu == "auto" and args.ray is None and args.jobs > len(allowed_cpus()):
        _note(f"-j {args.jobs} on {len(allowed_cpus())} allowed CPUs: workers share CPUs, and each runs slower")
    runs = None if args.runs is None else -(-args.runs // args.jobs)  # --runs is the campaign's, split evenly
    specs = [WorkerSpec(
        index=k, name=name, main=main, cpu=cpus[k], seed=args.seed + k, command=[str(target.path)] + command[1:],
        out=str(out), mode=args.mode, backend=args.backend, timeout_ms=timeout_ms,
        hang_timeout_ms=args.hang_timeout or hang_timeout_for(timeout_ms), max_time=args.max_time, max_runs=runs,
        batch=args.batch, exit_on_crash=args.exit_on_crash, tokens=tokens, seeds=seeds or [], resume=resume,
        cmplog=cmplog, detect_leaks=bool(args.detect_leaks),
        repro_prefix=["forkserver", "run", "--mode", args.mode, "-t", str(timeout_ms)],
        command_line=["forkserver", "fuzz"] + sys.argv[2:]) for k, (name, main) in enumerate(names)]
    monitor = make_monitor(live=False if args.plain else None)
    monitor.event(f"{args.jobs} workers in {out} ({', '.join(n for n, _ in names)}); "
                  f"seeds {'(resumed)' if resume else seeds_dir}; target {' '.join(command)}")
    if args.ray is not None:
        from .ray_campaign import RayCampaign

        campaign = RayCampaign(specs, target.path, out, monitor, address=args.ray or None,
                               exit_on_crash=args.exit_on_crash)
    else:
        campaign = ParallelCampaign(specs, monitor)
    try:
        summary = campaign.run()
    except ForkserverError:
        _remove_unused_instances(made, out if created_out else None)
        raise
    found = summary["saved_crashes"] > 0
    return (77 if args.exit_on_crash and found else 0), summary


def _ray_cluster_cpus(address: str) -> int:
    """-j for --ray without one: the CPUs of the cluster (this machine's for a local one)."""
    if not address:
        from .cpu import allowed_cpus

        return len(allowed_cpus())
    from .ray_campaign import connect, import_ray

    ray = import_ray()
    connect(ray, address)
    return max(int(ray.cluster_resources().get("CPU", 1)), 1)


def _remove_unused_instances(instances: list[Path], out: Path | None) -> None:
    """After a failed start: the instance directories this run made and saved nothing
    in, and the output directory too if this run made it and it is left empty."""
    import shutil

    for path in instances:
        if not any(p.name.startswith("id:") for p in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)
    if out is not None:
        shared = out / ".crashes"
        if shared.is_dir() and not any(out.glob("*/crashes/id:*")):
            shutil.rmtree(shared, ignore_errors=True)
        try:
            out.rmdir()
        except OSError:
            pass


def _fuzz_campaign(args, command, target, timeout_ms, cpu, out, resume, seeds, seeds_dir, tokens, input_to_state):
    """The campaign itself, once the target and its comparison stage are ready."""
    import shlex
    import signal

    from .executors import make_executor
    from .fuzzer import FuzzOptions, Fuzzer
    from .monitor import make_monitor
    from .objectives import hang_timeout_for
    from .outdir import OutputDir

    from .shared_crashes import SharedCrashes
    from .sync import SyncDir

    executor = make_executor(args.mode, target, timeout_ms, args.backend, cpu)
    name = args.main_name or args.secondary_name or args.name
    made = [] if (out / name).exists() else [out / name]  # what this run makes
    created_out = not out.exists()
    outdir = OutputDir.open(out, name, resume=resume)
    syncing = bool(args.main_name or args.secondary_name)
    sync = SyncDir(out, name, main=bool(args.main_name)) if syncing else None
    options = FuzzOptions(
        seed=args.seed, hang_timeout_ms=args.hang_timeout or hang_timeout_for(timeout_ms),
        max_time=args.max_time, max_runs=args.runs, exit_on_crash=args.exit_on_crash, batch=args.batch,
        tokens=tokens, repro_prefix=["forkserver", "run", "--mode", args.mode, "-t", str(timeout_ms)],
        target_command=command, command_line=["forkserver", "fuzz"] + sys.argv[2:])
    monitor = make_monitor(live=False if args.plain else None)
    monitor.event(f"output in {outdir.path}; seeds {'(resumed)' if resume else seeds_dir}; "
                  f"target {shlex.join(command)}")
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C
    fuzzer = Fuzzer(executor, outdir, options, monitor, input_to_state, sync=sync,
                    shared_crashes=SharedCrashes(out) if syncing else None)
    try:
        status = fuzzer.run(seeds, resume=resume)
    except ForkserverError:
        _remove_unused_instances(made, out if created_out else None)  # a target that cannot start leaves none
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return status, fuzzer


def _cmplog_binary(cmplog: str, command: list[str]) -> str:
    """The cmplog build -c names, or (--cmplog) the one built from the harness source."""
    from .build import build_cached

    if cmplog != "auto":
        return cmplog
    if Path(command[0]).suffix not in (".c", ".cc", ".cpp"):
        raise UsageError("--cmplog builds the cmplog binary from a harness source; for a built target, give "
                         "its cmplog build: -c CMPLOG_BINARY (forkserver build --cmplog)")
    return str(build_cached(Path(command[0]), cmplog=True))


def _input_to_state_stage(args, command: list[str], target, timeout_ms: int, cpu):
    """-c / --cmplog: the comparison stage, on a cmplog build of the target: the one
    given, the target itself (-c 0, as afl-fuzz has it), or one built here from the
    harness source (--cmplog)."""
    from .cmp_stage import InputToState
    from .cmplog import CmpLog
    from .executors import make_executor
    from .target import Target

    binary = str(target.path) if args.cmplog == "0" else _cmplog_binary(args.cmplog, command)
    cmplog_target = Target.from_command([binary] + command[1:])
    if not cmplog_target.info.cmplog:
        cmplog_target.cleanup()
        raise UsageError(f"{binary} does not log comparisons: build it with `forkserver build --cmplog`"
                         + (" (or drop -c 0: the target itself is not a cmplog build)" if args.cmplog == "0" else ""))
    log = CmpLog()
    mode = "fork" if args.mode in ("fork", "persistent") else args.mode
    executor = make_executor(mode, cmplog_target, timeout_ms, args.backend, cpu, extra_env=log.env())
    return InputToState(executor, log, seed=args.seed)


def cmd_build(args, extra) -> int:
    from .build import build

    from .sanitizers import parse_list

    sanitize = parse_list(args.sanitize) if args.sanitize else []
    out = build([Path(s) for s in args.sources], Path(args.output), args.cc, extra, args.afl_snapshot, sanitize,
                cmplog=args.cmplog)
    print(out)
    if args.cmplog:
        from . import aflpp
        from .doctor import afl_fuzz_version

        version = afl_fuzz_version()
        here = f"; the afl-fuzz here ({version}): {aflpp.cmplog_support(version)}" if version else ""
        print(f"note: for forkserver fuzz -c, and afl-fuzz -c of AFL++ "
              f"{', '.join(name for *_, name in aflpp.CMPLOG_LAYOUTS)}{here}", file=sys.stderr)
    return 0


def cmd_doctor(args, _command) -> int:
    from .doctor import report

    rep = report()
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    print(f"kernel {rep['kernel']} ({rep['machine']})")
    for name, b in rep["backends"].items():
        print(f"  {name:<13} {'yes' if b['available'] else 'no ':<4} {b['reason']}")
    print(f"auto picks: {rep['auto_backend']}")
    for cc, ver in rep["compilers"].items():
        print(f"{cc}: {ver or 'not installed'}")
    print(f"afl-fuzz: {rep['afl_fuzz'] or 'not installed (apt-get install afl++)'}")
    for line in rep["afl_fuzz_works"]:
        print(f"  {line}")
    return 0


def cmd_inspect(args, _command) -> int:
    from .inspect import inspect_binary

    info = inspect_binary(args.binary)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        for key, value in info.as_dict().items():
            print(f"{key}: {value}")
    return 0


def cmd_bench(args, command) -> int:
    from .bench import cli_bench

    return cli_bench(args, command)


def make_parser() -> argparse.ArgumentParser:
    from .executors import MODES

    parser = argparse.ArgumentParser(prog="forkserver", description="fork-server snapshot engine for fuzzing")
    parser.add_argument("--version", action="version", version=f"forkserver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run inputs through a target and report outcomes")
    _add_exec_options(p, MODES)
    p.add_argument("-i", dest="input", required=True, help="input file or directory")
    p.add_argument("--repeat", type=int, default=1, help="run the inputs N times")
    p.add_argument("--shuffle", action="store_true", help="shuffle the repeated schedule")
    p.add_argument("--seed", type=int, default=0, help="seed for --shuffle")
    p.add_argument("--batch", type=int, default=1,
                   help="snapshot mode: inputs per wake-up (up to 1024; the runtime hashes their maps)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("showmap", help="print the coverage of one input like afl-showmap")
    _add_exec_options(p, MODES)
    p.add_argument("-i", dest="input", required=True, help="input file")
    p.add_argument("-o", dest="output", help="write the map here instead of stdout")
    p.add_argument("-r", "--raw", action="store_true", help="raw hit counts, like afl-showmap -r")
    p.set_defaults(func=cmd_showmap)

    p = sub.add_parser("fuzz", help="coverage-guided fuzzing, in batches on the snapshot engine",
                       description="Fuzz TARGET (after `--`, or a harness source as the only argument). "
                                   "The output directory has afl-fuzz's layout.")
    _add_exec_options(p, ["auto", "snapshot", "fork", "persistent"])
    p.add_argument("target", nargs="?", help="a harness source or binary (instead of `-- TARGET ARGS`)")
    p.add_argument("-i", dest="input", help="seed file or directory; `-` resumes the output directory")
    p.add_argument("-o", dest="output", help="output directory (default: a fresh one under fuzz-out/)")
    p.add_argument("--name", default="default", help="this instance's directory inside -o")
    p.add_argument("-M", dest="main_name", metavar="NAME",
                   help="a main instance NAME in the sync directory -o, as afl-fuzz -M: imports every peer's finds")
    p.add_argument("-S", dest="secondary_name", metavar="NAME",
                   help="a secondary instance NAME in the sync directory -o, as afl-fuzz -S: imports the mains' finds")
    p.add_argument("-j", dest="jobs", type=int, metavar="N",
                   help="N worker processes, each pinned to its own CPU, sharing finds through -o (afl-fuzz's "
                        "sync layout: the first is the main)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the workers (-j N; default: the cluster's CPUs) as Ray actors on the cluster at "
                        "ADDRESS, or on a local one without it (pip install 'forkserver[ray]')")
    p.add_argument("--resume", action="store_true", help="resume the run in the output directory")
    p.add_argument("-x", dest="dict", action="append", metavar="DICT",
                   help="dictionary: AFL or libFuzzer file (file@LEVEL), or a directory of tokens; repeatable")
    p.add_argument("-s", dest="seed", type=int, default=0, help="random seed (same seed, same mutants)")
    p.add_argument("--max-time", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--runs", type=int, metavar="N", help="stop after N executions (and the calibration of the last finds)")
    p.add_argument("--exit-on-crash", action="store_true",
                   help="stop at the first saved crash, with exit status 77")
    p.add_argument("--hang-timeout", type=int, metavar="MS",
                   help="a timeout is a hang if it also times out with this (default 2x -t, at least 1000)")
    p.add_argument("-c", dest="cmplog", metavar="CMPLOG_BINARY",
                   help="comparison feedback (input-to-state) with this `forkserver build --cmplog` build of the "
                        "target; `-c 0`: the target is one itself")
    p.add_argument("--cmplog", dest="cmplog", action="store_const", const="auto",
                   help="comparison feedback, with a cmplog build made from the harness source")
    p.add_argument("--batch", type=int, default=256, help="snapshot mode: mutants per wake-up (1-1024)")
    p.add_argument("--plain", action="store_true", help="plain status lines even on a terminal")
    p.add_argument("--json", action="store_true", help="print the final figures as one JSON object on stdout")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("build", help="compile a harness with the runtime and coverage")
    p.add_argument("sources", nargs="+")
    p.add_argument("-o", dest="output", required=True)
    p.add_argument("--cc", choices=["clang", "gcc"], default=None)
    p.add_argument("--afl-snapshot", action="store_true",
                   help="mark the binary persistent for afl-fuzz: it then runs in snapshot mode under afl-fuzz")
    p.add_argument("--sanitize", metavar="LIST",
                   help="build with sanitizers, e.g. address,undefined (UBSan findings then abort)")
    p.add_argument("--cmplog", action="store_true",
                   help="log comparison operands, for `forkserver fuzz -c` (input-to-state); no sanitizers")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("doctor", help="which snapshot backends and tools work here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("inspect", help="what a binary carries (runtime, markers, coverage)")
    p.add_argument("binary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    from .bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, command = _split_target(argv)
    try:
        from .config import check_settings

        check_settings()
        parser = make_parser()
        args = parser.parse_args(own)
        return args.func(args, command)
    except ForkserverError as exc:
        print(f"forkserver: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

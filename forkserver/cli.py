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


def cmd_build(args, extra) -> int:
    from .build import build

    from .sanitizers import parse_list

    sanitize = parse_list(args.sanitize) if args.sanitize else []
    out = build([Path(s) for s in args.sources], Path(args.output), args.cc, extra, args.afl_snapshot, sanitize)
    print(out)
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

    p = sub.add_parser("build", help="compile a harness with the runtime and coverage")
    p.add_argument("sources", nargs="+")
    p.add_argument("-o", dest="output", required=True)
    p.add_argument("--cc", choices=["clang", "gcc"], default=None)
    p.add_argument("--afl-snapshot", action="store_true",
                   help="mark the binary persistent for afl-fuzz: it then runs in snapshot mode under afl-fuzz")
    p.add_argument("--sanitize", metavar="LIST",
                   help="build with sanitizers, e.g. address,undefined (UBSan findings then abort)")
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

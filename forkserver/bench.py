"""Benchmarks: modes side by side on one target (filled in below)."""


def add_bench_parser(sub):
    p = sub.add_parser("bench", help="exec/s of each mode side by side")
    p.set_defaults(func=lambda a, c: 0)


def cli_bench(args, command):
    return 0

"""Benchmarks put the execution modes side by side on one target, and time process
creation next to a snapshot restore.

`forkserver bench` (modes.py) runs the same inputs through exec, fork, snapshot (every
backend that works here) and persistent mode, with warm-up, repeated trials interleaved
across the rows of one ballast size, medians and spreads, and ratios against fork mode.
`forkserver bench spawn` (spawn.py) times fork/vfork/posix_spawn/clone from a parent of a
given RSS and puts a snapshot restore of a big_heap target of the same RSS next to them.
report.py shows and stores the results, machine.py records where they were measured,
cli.py is the command line.
"""
from .cli import add_bench_parser, cli_bench, parse_int_list, parse_name_list
from .machine import bundled_harness, checkout_root, default_corpus, machine_metadata, vm_rss_mb
from .modes import (EXEC_TRIAL_CAP_S, MODE_ORDER, BenchPlan, RowDriver, RowResult, RowSpec, Trial, afl_spec,
                    default_specs, rows_json, run_mode_bench)
from .report import format_table, median_or_none
from .spawn import RESTORE_OPERATION, SPAWN_PRIMITIVES, run_spawn_bench

__all__ = ["EXEC_TRIAL_CAP_S", "MODE_ORDER", "RESTORE_OPERATION", "SPAWN_PRIMITIVES", "BenchPlan", "RowDriver",
           "RowResult", "RowSpec", "Trial", "add_bench_parser", "afl_spec", "bundled_harness", "checkout_root",
           "cli_bench", "default_corpus", "default_specs", "format_table", "machine_metadata", "median_or_none",
           "parse_int_list", "parse_name_list", "rows_json", "run_mode_bench", "run_spawn_bench", "vm_rss_mb"]

#!/usr/bin/env python3
"""Checks that the test suite catches deliberate faults in the restore, the coverage and
the protocol.

Each fault is one textual change to one source file: (name, file glob, exact old text,
new text, pytest selection). The check copies the repository into a scratch directory
(the checkout itself is never written to), builds the cffi helpers there, runs the
union of all selections once on the unchanged copy (it must pass), then for each fault:
applies it, rebuilds the helpers when it touches their sources, runs its selection,
and puts the file back. One line per fault:

    caught   NAME  the first failing test
    missed   NAME  its selection passed
    stale    NAME  the old text is not in the sources (any more), or not exactly once

then "N caught, M missed" (and how many are stale). Stale faults count as neither:
update their old text to the current sources. The old texts are kept short and
distinctive so that edits around them do not break them; a glob lets a fault follow
code that moves between files.

The scratch copy imports its own package (PYTHONPATH) and builds its own runtime
(forkserver.build finds csrc/ next to the imported package) with its own build cache
(FORKSERVER_CACHE_DIR), so nothing is shared with the checkout or its installed
package.

    python scripts/mutation_check.py                    # every fault, working tree
    python scripts/mutation_check.py --only brk itimer  # some of them
    python scripts/mutation_check.py --base HEAD --overlay tests scripts forkserver/bench.py
    python scripts/mutation_check.py --list
"""
import argparse
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# sources compiled into the cffi helpers (forkserver/_native): a fault there needs a rebuild
NATIVE_SOURCES = ("csrc/host/", "csrc/common/", "csrc/include/")

# A selection is pytest's argument list; a -k in it applies to every path in it.
COVERAGE = ["tests/test_coverage.py"]
PROBE = ["tests/test_snapshot.py", "-k", "process_state or restore_probe"]
STATE = ["tests/test_restore_state.py", "-k", "every_piece"]
SPARSE = ["tests/test_zoo.py", "-k", "snapshot_matches_fork and (sparse_reserve or sparse_walked)"]
AFLPP = ["tests/test_aflpp_protocol.py"]
MATRIX_SMALL = ["tests/test_snapshot.py", "-k", "matches_fork and (maze or leaky or crash) and not gcc and not hang"]
CAMPAIGNS = ["tests/test_campaigns.py"]


@dataclass
class Fault:
    name: str
    file: str          # path or glob, relative to the repository root
    old: str           # must occur exactly once in the matched files
    new: str
    selection: list[str]
    what: str = ""
    # the same fault in other versions of the code: (old, new) pairs, tried in order
    # after (old, new); the first one found exactly once is applied
    alternatives: tuple[tuple[str, str], ...] = ()

    def variants(self) -> list[tuple[str, str]]:
        return [(self.old, self.new), *self.alternatives]


FAULTS = [
    # ---- coverage ----
    Fault("never-zero", "csrc/runtime/coverage.c", "fs_map[*guard] = c + (c == 0);", "fs_map[*guard] = c;",
          COVERAGE, "trace-pc-guard counter wraps to 0 (plain ++)"),
    Fault("bucket-table", "csrc/common/fs_buckets.h", "[4 ... 7] = 8, [8 ... 15] = 16,",
          "[4 ... 8] = 8, [9 ... 15] = 16,", COVERAGE + ["tests/test_native.py", "tests/test_units.py"],
          "count 8 lands in the 4-7 class"),
    Fault("map0-reset", "csrc/runtime/coverage.c", "    memset(fs_map, 0, fs_map_size);\n    fs_map[0] = 1;",
          "    memset(fs_map, 0, fs_map_size);", COVERAGE, "the 'ran' byte is not set when the map is reset"),
    Fault("map0-fork-child", "csrc/runtime/server.c", "take_input_from_fuzz_shm();\n                    fs_map[0] = 1;",
          "take_input_from_fuzz_shm();", COVERAGE, "a fork-mode child does not set the 'ran' byte"),
    # ---- protocol ----
    Fault("hello-mapsize", "csrc/runtime/server.c", "hello |= FS_OPT_MAPSIZE | ((fs_map_size - 1) << 1);",
          "hello |= ((fs_map_size - 1) << 1);",
          COVERAGE + ["tests/test_fork.py::test_afl_fuzz_drives_an_afl_snapshot_build_in_snapshot_mode"],
          "the hello word leaves out the MAPSIZE option"),
    Fault("shdmem-reply-ignored", "csrc/runtime/server.c",
          "(reply & FS_OPT_SHDMEM_FUZZ)) attach_fuzz_shm(0);", "(reply & FS_OPT_SHDMEM_FUZZ)) (void)0;",
          COVERAGE, "the fuzzer's yes to the test-case buffer is ignored"),
    Fault("batch-timeout", "csrc/host/fs_host.c", "if (completed != last_completed && !res->timed_out) {",
          "if (0 && completed != last_completed && !res->timed_out) {",
          ["tests/test_snapshot.py::test_batch_longer_than_the_timeout_is_all_ok"],
          "the timeout counts from the start of the batch, not of each input",
          alternatives=(("uint64_t start = __atomic_load_n(&ctl->input_start_ns, __ATOMIC_ACQUIRE), now",
                         "uint64_t start = t0, now"),)),
    # ---- restore ----
    Fault("open-list", "csrc/runtime/track*.c", "open[1 + open[0]++] = (uint32_t)i;", "(void)open;",
          ["tests/test_snapshot.py", "-k", "(big_heap or kernel_write) and pagemap"],
          "pagemap-scan: a page of a region >= 32 MiB opened by its write trap but never restored"),
    Fault("cooled-page-still-open", "csrc/runtime/track_pagemap_scan.c",
          "state[i] = (unsigned char)((state[i] & ~PAGE_OPEN) | PAGE_COOLED);",
          "state[i] |= PAGE_COOLED;",
          ["tests/test_sanitizers.py", "-k", "pages_left_clean and pagemap"],
          "pagemap-scan: a trapped page protected again after its clean restores still counts as open"),
    Fault("closed-at-over-open-list", "csrc/runtime/track_pagemap_scan.c",
          "static size_t closed_at_offset(size_t n) { return open_list_offset(n) + sizeof(uint32_t) * (1 + n); }",
          "static size_t closed_at_offset(size_t n) { return open_list_offset(n) + sizeof(uint32_t); }",
          ["tests/test_sanitizers.py", "-k", "(every_bug or pages_left_clean or shuffled) and pagemap"],
          "pagemap-scan: the restore counts at which pages were protected again overwrite the open list"),
    Fault("trapped-page-cooled-unrestored", "csrc/runtime/track_pagemap_scan.c",
          "if (fs_snapshot_restore_page_in(r, p)) r->written[i] = 0;",
          "if (0) r->written[i] = 0;",
          ["tests/test_sanitizers.py", "-k", "(every_bug or pages_left_clean) and pagemap"],
          "pagemap-scan: the open pages of a trapped region are never put back"),
    Fault("trap-copy-skipped", "csrc/runtime/track*.c",
          "fs_libc.memcpy(r->copy + (p - r->start), (void *)p, PAGE);", "(void)0;",
          ["tests/test_snapshot.py", "-k", "(big_heap or kernel_write) and pagemap"],
          "pagemap-scan: a large region's page is opened without taking its snapshot copy"),
    Fault("write-done-too-far", "csrc/runtime/track*.c", "if (p < limit) break;", "if (p + PAGE < limit) break;",
          ["tests/test_zoo.py", "-k", "snapshot_matches_fork and big_region_write"],
          "pagemap-scan: after a read into a large region, the last page the kernel wrote is protected as unwritten"),
    Fault("write-done-run-short", "csrc/runtime/track_pagemap_scan.c", "if (!run_end) run_end = p + PAGE;",
          "if (!run_end) run_end = p;", ["tests/test_zoo.py", "-k", "snapshot_matches_fork and big_region_write"],
          "pagemap-scan: pages a read did not fill are protected again a run at a time, short of the run's last page"),
    Fault("read-on-from-start", "csrc/runtime/syscall_watch.c", "nr == SYS_pread64 ? a[3] + (long)done : 0",
          "nr == SYS_pread64 ? a[3] : 0", ["tests/test_zoo.py", "-k", "snapshot_matches_fork and big_region_write"],
          "a pread into a write-trapped buffer that filled the pages its file's size opened reads on from its start"),
    Fault("skip-first-dirty-mprotect", "csrc/runtime/track*.c", "for (size_t i = 0; i < s->dirty_count; i++) {",
          "for (size_t i = 1; i < s->dirty_count; i++) {",
          ["tests/test_snapshot.py", "-k", "mprotect and (matches_fork or verify_restore_passes) and not gcc"],
          "mprotect: the first page of the dirty list is not restored"),
    Fault("skip-first-dirty-pagemap", "csrc/runtime/track*.c", "for (uintptr_t p = vec[k].start; p < vec[k].end;",
          "for (uintptr_t p = vec[k].start + (k ? 0 : PAGE); p < vec[k].end;",
          ["tests/test_snapshot.py", "-k", "pagemap and (matches_fork or verify_restore_passes) and not gcc"],
          "pagemap-scan: the first page each walk reports is not restored"),
    Fault("compared-region-unrestored", "csrc/runtime/track_pagemap_scan.c",
          "if (r->compared) fs_collect_by_compare(r);", "if (r->compared && 0) fs_collect_by_compare(r);",
          ["tests/test_sanitizers.py", "-k", "equals_fork_over_shuffled_runs and pagemap"],
          "pagemap-scan: the small regions compared in full at each restore are never put back"),
    Fault("input-window-stale-tail", "csrc/runtime/input_window.c",
          "if (h->written_end > len) fs_libc.memset", "if (0) fs_libc.memset",
          ["tests/test_sanitizers.py", "-k", "window_holds_nothing"],
          "the input window keeps a longer earlier input's bytes past a shorter one's end"),
    Fault("input-window-unpoisoned", "csrc/runtime/input_window.c",
          "fs_libc.memset(shadow_of(window), ASAN_HEAP_REDZONE", "if (0) fs_libc.memset(shadow_of(window), 0",
          ["tests/test_sanitizers.py", "-k", "fork_mode_reports_each_bug"],
          "the input window is not poisoned around the input: overreads go unseen"),
    Fault("input-window-partial-granule", "csrc/runtime/input_window.c",
          "*shadow_of(p + whole * granule) = (unsigned char)(len & (granule - 1));", "(void)granule;",
          ["tests/test_sanitizers.py", "-k", "fork_mode_reports_each_bug"],
          "the last bytes of an input whose length is not a multiple of 8 read as poisoned"),
    Fault("brk", "csrc/runtime/snapshot.c", "fs_sys3(SYS_brk, (long)s->brk_start, 0, 0);", "(void)0;", PROBE,
          "the program break is not put back"),
    Fault("itimer", "csrc/runtime/snapshot.c", "fs_raw_syscall(SYS_setitimer, t, (long)&s->timers[t], 0, 0, 0, 0);",
          "(void)t;", PROBE, "interval timers are not restored"),
    Fault("reprotect", "csrc/runtime/snapshot.c", "for (int i = s->reprotected_count - 1; i >= 0; i--)",
          "for (int i = s->reprotected_count - 1; i >= 0 && 0; i--)", PROBE,
          "protections changed by mprotect are not restored"),
    Fault("sigaction", "csrc/runtime/snapshot.c",
          "fs_raw_syscall(SYS_rt_sigaction, sig, (long)&s->handlers[sig], 0,", "if (0) fs_raw_syscall(SYS_rt_sigaction, sig, (long)&s->handlers[sig], 0,",
          PROBE, "signal handlers are not restored"),
    Fault("new-fds", "csrc/runtime/snapshot.c",
          "for (int i = 0; i < s->new_fd_count; i++) fs_sys3(SYS_close, s->new_fds[i], 0, 0);",
          "(void)0;", PROBE, "fds opened during an input stay open"),
    Fault("fd-offsets", "csrc/runtime/snapshot.c",
          "if (s->fds[i].offset >= 0) fs_sys3(SYS_lseek, s->fds[i].fd, s->fds[i].offset, SEEK_SET);",
          "(void)i;", PROBE, "offsets of the snapshot's fds are not rewound"),
    Fault("sigmask", "csrc/runtime/snapshot.c",
          "sys4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&s->sigmask, 0, sizeof s->sigmask);\n"
          "        s->hidden_blocked = s->hidden_blocked_snap;",
          "s->hidden_blocked = s->hidden_blocked_snap;", PROBE, "the signal mask is not restored"),
    Fault("fenv", "csrc/runtime/snapshot.c", "    fesetenv(&s->fenv);\n", "", PROBE,
          "the floating-point environment is not restored"),
    # ---- hostile programs: processes, kernel-side state, signals, the runner protocol ----
    Fault("child-ends-input", "csrc/runtime/runtime.c",
          "return fs_st && fs_st->in_iteration && fs_in_runner();", "return fs_st && fs_st->in_iteration;",
          ["tests/test_zoo.py", "-k", "snapshot_matches_fork and fork_wait"],
          "a process the input forked ends the input as if it were the runner"),
    Fault("children-kept", "csrc/runtime/snapshot.c", "    reap_children();\n", "",
          ["tests/test_zoo.py", "-k", "snapshot_matches_fork and fork_orphan"],
          "children left by an input are not killed and reaped"),
    Fault("process-state", "csrc/runtime/snapshot.c",
          "if (s->process_state_changed && !(fs_st->cfg.break_restore & FS_BREAK_PROCESS_STATE)) {",
          "if (0) {", STATE, "cwd, umask, rlimits, name and the rest are not put back"),
    Fault("sigsys-blockable", "csrc/runtime/syscall_watch.c", "*kernel_mask = wanted & ~hidden;",
          "*kernel_mask = wanted;", ["tests/test_zoo.py", "-k", "snapshot_matches_fork and block_all"],
          "the program may block SIGSYS (a forced one kills the runner)"),
    Fault("sigbus-visible", "csrc/runtime/syscall_watch.c", "    if (sig == SIGBUS && s->owns_faults) return &s->bus_view;\n",
          "", ["tests/test_zoo.py", "-k", "snapshot_matches_fork and handler_visible"],
          "the runtime's SIGBUS handler (large regions' write traps) shows through sigaction()"),
    Fault("stale-run-command", "csrc/runtime/server.c", "if (cmd == FS_CMD_RUN && fs_st->direct) continue;", "",
          ["tests/test_restore_state.py", "-k", "timeouts or run_command_left"],
          "a run command left by a killed runner reaches the server"),
    Fault("idle-death-charged", "forkserver/executors/snapshot.py", "if b.never_started and not b.timed_out:",
          "if False:", ["tests/test_restore_state.py", "-k", "run_command_left"],
          "an input sent to a runner that was already dead is reported as killed"),
    # ---- sanitizer builds and sparse memory ----
    Fault("trapped-holes-kept", "csrc/runtime/sparse.c",
          "            fs_libc.memset((void *)p, 0, FS_PAGE_SIZE);\n", "", SPARSE,
          "what an input wrote into a trapped hole is kept"),
    Fault("walk-around-drops-holes", "csrc/runtime/sparse.c", "            reset_walked(from, r->start, skip_regions);\n",
          "", ["tests/test_zoo.py", "-k", "snapshot_matches_fork and (sparse_walked or big_region_write)"],
          "the walk going around a large region skips the holes before it"),
    Fault("populated-widened", "csrc/runtime/sparse.c",
          "    if (p->count == p->max) {\n        p->overflow = 1;\n        return;\n    }\n",
          "    if (p->count == 64) {\n        last->end = end;\n        return;\n    }\n",
          ["tests/test_zoo.py", "-k", "scattered_mapping"],
          "past 64 populated ranges, the last is widened over everything after it"),
    Fault("merged-walk-short", "csrc/runtime/sparse.c",
          "    if (last && start >= last->end && start - last->end < MERGE_GAP) {\n        last->end = end;\n",
          "    if (last && start >= last->end && start - last->end < MERGE_GAP) {\n",
          ["tests/test_zoo.py", "-k", "snapshot_matches_fork and scattered_walked"],
          "a mapping merged into its neighbour's walk is never walked"),
    Fault("walked-holes-kept", "csrc/runtime/sparse.c",
          "        fs_sys3(SYS_madvise, (long)p, (long)(stop - p), MADV_DONTNEED);\n", "", SPARSE,
          "the walk finds what an input populated in a smaller mapping's holes, and keeps it"),
    Fault("discard-unseen", "csrc/runtime/syscall_watch.c",
          "    if (advice != MADV_DONTNEED && advice != MADV_FREE",
          "    if (1 || advice != MADV_DONTNEED && advice != MADV_FREE", SPARSE,
          "MADV_DONTNEED on tracked memory goes unseen (the mprotect backend keeps zeros)"),
    Fault("reservation-kept", "csrc/runtime/snapshot.c", "    restore_reservations(s);\n", "", SPARSE,
          "parts of a reservation an input mapped stay mapped"),
    Fault("asan-interceptor", "csrc/runtime/snapshot.c",
          "if (fs_libc.memcmp((void *)p, copy, FS_PAGE_SIZE) == 0) return 0;",
          "if (memcmp((void *)p, copy, FS_PAGE_SIZE) == 0) return 0;",
          ["tests/test_sanitizers.py", "-k", "every_bug and pagemap"],
          "the restore compares pages through ASan's memcmp, which checks the redzones in them"),
    Fault("no-sanitizer-defaults", "forkserver/sanitizers.py", "        parts = [opt for key, opt in kept.items() if key not in user_names]",
          "        parts = []", ["tests/test_sanitizers.py", "-k", "fork_mode_reports"],
          "targets run without abort_on_error=1: an ASan report is an exit, not a crash"),
    Fault("no-summary", "forkserver/executors/base.py", "        result.sanitizer = report_summary(log.new_text())",
          "        log.new_text()", ["tests/test_sanitizers.py", "-k", "fork_mode_reports"],
          "a crash does not carry its sanitizer summary"),
    Fault("leaks-unchecked", "csrc/runtime/libfuzzer_driver.c", "        fs_check_leaks();\n        fs_iteration_end(0);",
          "        fs_iteration_end(0);",
          ["tests/test_sanitizers.py", "-k", "leak"], "snapshot mode ends an input before the leak check"),
    Fault("clone-vm-traps-unhandled", "csrc/runtime/write_faults.c",
          "info->si_code == BUS_ADRERR && fs_shares_runner_memory())", "info->si_code == BUS_ADRERR && fs_in_runner())",
          ["tests/test_zoo.py", "-k", "snapshot_matches_fork and big_region_write"],
          "a write trap taken by a task sharing the runner's memory (a vfork child) is not handled"),
    Fault("vfork-from-handler", "csrc/runtime/syscall_watch.c", "    ret_if_nr(f, SYS_vfork, SECCOMP_RET_ALLOW);\n",
          "", ["tests/test_zoo.py", "-k", "snapshot_matches_fork and big_region_write"],
          "a runner that watches kernel writes traps vfork() and performs it from the handler, on its stack"),
    Fault("rseq-page-trapped", "csrc/runtime/snapshot.c",
          "r->compare_always = r->is_stack || (s->rseq_start < r->end && r->start < s->rseq_end);",
          "r->compare_always = r->is_stack;", ["tests/test_sanitizers.py", "-k", "every_bug and pagemap"],
          "the page the kernel writes rseq fields into is write-protected like any other"),
    Fault("sanitizer-heap-cold", "csrc/runtime/server.c",
          "if (cfg->mode == FS_MODE_SNAPSHOT && cfg->asan_warmup) fs_sanitizer_heap_warm();", "",
          ["tests/test_sanitizers.py", "-k", "every_size_class and pagemap"],
          "snapshot runners start with ASan's size classes unmapped: each input maps them"),
    Fault("sanitizer-heap-unpurged", "csrc/runtime/sanitizer_heap.c",
          "if (__sanitizer_purge_allocator) __sanitizer_purge_allocator();", "",
          ["tests/test_sanitizers.py", "-k", "every_size_class and pagemap"],
          "the warm-up's blocks stay quarantined: classes of one block per mapping stay full"),
    # ---- per-input novelty ----
    Fault("virgin-kept", "csrc/common/fs_novelty.h", "        if (update) virgin[i] &= (unsigned char)~b;\n",
          "", ["tests/test_novelty.py"], "has-new-bits never takes what it saw out of the virgin map"),
    Fault("bucket-as-edge", "csrc/common/fs_novelty.h", "        if (virgin[i] == 0xff) ret = 2;",
          "        if (virgin[i]) ret = 2;", ["tests/test_novelty.py"], "a new bucket of a known edge counts as a new edge"),
    Fault("runner-novelty-lost", "csrc/runtime/server.c",
          "if ((ctl->check_coverage & FS_CHECK_NOVELTY) && fs_st->virgin) res->flags |= fs_coverage_novelty(fs_st->virgin);",
          "", ["tests/test_novelty.py"], "the runner does not classify the inputs of a batch"),
    # ---- mutators ----
    Fault("tokens-unused", "csrc/host/fs_mutate.c",
          "if ((op == INSERT_TOKEN || op == OVERWRITE_TOKEN) && (!tokens || !tokens->count)) op = RANDOM_BYTE;",
          "if (op == INSERT_TOKEN || op == OVERWRITE_TOKEN) op = RANDOM_BYTE;", ["tests/test_mutators.py"],
          "havoc never uses the dictionary"),
    Fault("clone-split-block", "csrc/host/fs_mutate.c", "            memcpy(out + to + head, out + to + clone_len, clone_len - head);",
          "            memcpy(out + to + head, out + from + head, clone_len - head);", ["tests/test_mutators.py"],
          "a block cloned into itself copies the gap instead of its tail"),
    Fault("dict-escapes", "forkserver/mutators.py", "            out.append(int(text[i + 2:i + 4], 16))",
          "            out.append(int(text[i + 2:i + 4], 10) if text[i + 2:i + 4].isdigit() else 0)",
          ["tests/test_mutators.py"], "\\xNN escapes read as decimal"),
    # ---- the output directory ----
    Fault("resume-ids", "forkserver/outdir.py", "return max(ids, default=-1) + 1", "return 0",
          ["tests/test_outdir.py"], "a resumed run numbers its entries from 0 again, over the earlier ones"),
    Fault("crash-counts", "forkserver/feedbacks.py", "np.where(counts != 0, np.uint8(128), np.uint8(1))",
          "np.where(counts != 0, counts, np.uint8(1))", ["tests/test_feedbacks.py"],
          "crashes de-duplicated by hit counts, not by the edges they hit"),
    # ---- starting targets ----
    Fault("inherited-fds-passed", "forkserver/executors/base.py",
          "actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds() if fd not in kept]", "pass",
          ["tests/test_robustness.py", "-k", "descriptor"],
          "targets inherit the orchestrator's inherited descriptors (a Ray worker's log files)"),
    Fault("inherited-signals-passed", "forkserver/executors/base.py",
          "setsigdef=RESET_SIGNALS, setsigmask=())", "setsigdef=())",
          ["tests/test_robustness.py", "-k", "no_terminal"],
          "targets keep the orchestrator's ignored signals (Python's SIGPIPE) and blocked mask"),
    Fault("core-dumps-allowed", "forkserver/executors/base.py",
          "    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))", "    pass",
          ["tests/test_robustness.py", "-k", "no_terminal"],
          "targets may dump core: every crash waits for the dump"),
    Fault("terminal-shared", "forkserver/executors/base.py", "file_actions=actions, setsid=True,",
          "file_actions=actions, setpgroup=0,", ["tests/test_robustness.py", "-k", "no_terminal"],
          "targets share the orchestrator's terminal (a read of /dev/tty stops them)"),
    # ---- the fuzzer ----
    Fault("batch-news-dropped", "forkserver/executors/snapshot.py", "flagged = (words[:, 1] & NOTABLE_FLAGS) != 0",
          "flagged = (words[:, 1] & 0) != 0", ["tests/test_fuzz.py", "-k", "dictionaries"],
          "the fuzzer ignores the runner's new-coverage flags in a batch"),
    Fault("dying-input-index", "forkserver/executors/snapshot.py", "notable.append((done + completed, dying))",
          "notable.append((done, dying))", ["tests/test_fuzz.py", "-k", "maze_crash and snapshot"],
          "the input a runner died in is taken from the wrong slot of the batch"),
    Fault("calibration-blind", "forkserver/calibration.py", "varies |= BUCKETS[r.coverage.counts] != reference",
          "varies |= False", ["tests/test_fuzz.py", "-k", "calibration"],
          "calibration never sees a variable edge"),
    Fault("cull-favours-none", "forkserver/scheduler.py", "            best.favored = True",
          "            best.favored = False", ["tests/test_fuzz.py", "-k", "cull or favoured"],
          "the cull marks no entry favoured"),
    Fault("hangs-never-saved", "forkserver/fuzzer.py",
          "if confirmed.outcome is Outcome.TIMEOUT and self.objectives.new_hang(confirmed)",
          "if confirmed.outcome is Outcome.OK and self.objectives.new_hang(confirmed)",
          ["tests/test_fuzz.py", "-k", "hangs"], "a confirmed hang is not saved"),
    # ---- the bench ----
    Fault("ratio-vs-best", "forkserver/bench/*.py", "            return r.median_eps()",
          "            return max(t.execs_per_sec for t in r.trials)", ["tests/test_bench.py", "-k", "ratio"],
          "'vs fork' divides by the fork row's best trial, not its median"),
    Fault("cmplog-logs-runtime", "csrc/runtime/cmplog.c", "return from_runtime(pc) ? 0 : log;", "return log;",
          ["tests/test_cmplog.py", "-k", "snapshot_and_fork"],
          "the runtime's own string comparisons (after an input's mmap) are logged as the program's"),
    Fault("cmplog-while-disabled", "csrc/runtime/cmplog.c", "if (!log || !log->enabled) return 0;",
          "if (!log) return 0;", ["tests/test_cmplog.py"], "comparisons are logged while logging is off"),
    Fault("new-error-word-ignored", "forkserver/executors/fork.py",
          "if (hello & 0xFFFF0000) == lib.FS_NEW_ERROR:", "if False:",
          AFLPP + ["-k", "error_code"], "an AFL++ 4.20c error word is read as an old options word"),
    Fault("map-never-doubled", "forkserver/mapsize.py", "return capacity * 2 if capacity < BLIND_LIMIT else None",
          "return None", AFLPP + ["-k", "16_mib"],
          "a target that dumps too small a map size (AFL++ 4.04c, late guards) gets no larger map"),
    Fault("reported-map-size-trusted", "forkserver/executors/fork.py",
          "            if self.map_size > self.map_capacity:\n                raise MapTooSmall(self.map_size)\n", "",
          AFLPP + ["-k", "16_mib"], "a map size from the new handshake larger than the shared map is taken as is"),
    Fault("old-fuzzer-command-dropped", "csrc/runtime/server.c", "h.first_cmd = reply;", "h.first_cmd = -1;",
          AFLPP + ["-k", "old_afl_fuzz"], "the new hello's fallback loses an old afl-fuzz's first run command"),
    Fault("no-newcmplog-bit", "csrc/runtime/server.c", "if (aflpp_cmplog == FS_AFLPP_CMPLOG_404) hello |= FS_OPT_NEWCMPLOG;",
          "", AFLPP + ["-k", "cmplog"], "afl-fuzz 4.04c -c is not told the CMPLOG instance logs in its map"),
    Fault("cmplog-404-wrong-type", "csrc/runtime/cmplog_aflpp.c", "{FS_AFLPP_CMPLOG_404, sizeof(struct header_404), 1, 2,",
          "{FS_AFLPP_CMPLOG_404, sizeof(struct header_404), 2, 2,", AFLPP + ["-k", "layout"],
          "integer comparisons land in AFL++ 4.04c's map as string comparisons"),
    Fault("cmplog-422-operand-order", "csrc/runtime/cmplog_aflpp.c",
          "struct ints_422 { uint64_t v0, v0_128, v0_256[2], v1,", "struct ints_422 { uint64_t v0, v1, v0_256[2], v0_128,",
          AFLPP + ["-k", "layout"], "4.22a's operands are written in 4.04c's order"),
    Fault("direct-crash-status-lost", "csrc/runtime/server.c",
          "            break;\n        }\n        if (write_u32(FS_FORKSRV_ST_FD, (uint32_t)status)) die_exit(0);",
          "            break;\n        }\n        if (*exchange != FS_EXCHANGE_PID_SENT && write_u32(FS_FORKSRV_ST_FD, (uint32_t)status)) die_exit(0);",
          AFLPP + ["-k", "snapshot_mode and runner"], "a runner answering afl-fuzz dies in an input: no status reaches afl-fuzz"),
    Fault("direct-taken-command-read-again", "csrc/runtime/server.c",
          "if (exchange[1] == FS_EXCHANGE_NO_CMD) next_command(&first_cmd);",
          "next_command(&first_cmd);", AFLPP + ["-k", "killed_between and runner"],
          "the server waits for a command a killed runner already took"),
    Fault("private-map-not-grown", "csrc/runtime/coverage.c", "    grow_private_map(fs_map_size);\n", "",
          AFLPP + ["-k", "private_map"], "a build run on its own keeps an 8 MiB map past its 8 MiB of guards"),
    Fault("i2s-one-form", "forkserver/input_to_state.py", "repl = encode(target, cmp.size, form)",
          "repl = encode(target, cmp.size, \"le\")", ["tests/test_input_to_state.py"],
          "the replacement is written little endian whatever form the operand was found in"),
    Fault("sync-progress-not-recorded", "forkserver/sync.py", "write_whole(self.synced / batch.peer, struct.pack(\"<I\", batch.next_id))",
          "pass", CAMPAIGNS, "a peer's entries are imported again at every sync (.synced/PEER never written)"),
    Fault("sync-secondary-reads-everyone", "forkserver/sync.py", "return names if self.elected else mains",
          "return names", CAMPAIGNS, "a secondary imports from secondaries too (afl-fuzz's rule broken)"),
    Fault("runtime-store-ignores-sources", "forkserver/build.py",
          "key = _digest([Path(__file__), *_runtime_files()], f\"{compiler}",
          "key = _digest([Path(__file__)], f\"{compiler}", ["tests/test_units.py", "-k", "compiled_once"],
          "runtime objects compiled from an older runtime source are linked into new builds"),
    Fault("campaign-without-cmplog-stage", "forkserver/parallel.py", "    if spec.cmplog:\n        how = SimpleNamespace(",
          "    if False:\n        how = SimpleNamespace(", CAMPAIGNS,
          "-j and --ray workers fuzz without the comparison stage -c asked for"),
    Fault("sync-stand-in-stays", "forkserver/sync.py", "if self.elected and any(n < self.name for n in mains):",
          "if False:", CAMPAIGNS, "a secondary that stood in as main never steps down: two mains flap or stay"),
    Fault("sync-no-stand-in", "forkserver/sync.py", "elif not self.elected and has_peers and not mains:",
          "elif False:", CAMPAIGNS, "a secondary in a directory without a main imports nothing, for ever"),
    Fault("sync-imports-dropped", "forkserver/fuzzer.py", "self._handle(origin, r, data, op=f\"sync:{batch.peer}\")",
          "pass", CAMPAIGNS, "peers' entries run but are never kept"),
    Fault("shared-crash-always-new", "forkserver/objectives.py",
          "return self.shared is None or self.shared.claim(", "return True or self.shared.claim(", CAMPAIGNS,
          "a crash another worker saved is saved again"),
    Fault("worker-restart-not-resumed", "forkserver/parallel.py",
          "w.spec.resume = queue_dir.is_dir() and any(", "w.spec.resume = False and any(", CAMPAIGNS,
          "a restarted worker starts afresh instead of carrying on from its own queue"),
    Fault("ray-restart-forgets-reports", "forkserver/ray_campaign.py",
          "restore = self._files_in_out(k)", "restore = []", CAMPAIGNS,
          "a Ray worker started again loses what it had reported (its crash is saved twice)"),
]


# ---- the scratch copy ----


def git(*args: str, repo: Path = REPO, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, **kw)


def working_tree_files(repo: Path) -> list[str]:
    """Tracked and untracked (not ignored) files, as they are on disk."""
    out = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", repo=repo).stdout
    return [p for p in out.decode().split("\0") if p and (repo / p).is_file()]


def copy_files(repo: Path, dest: Path, files: list[str]) -> None:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target)


def make_scratch(repo: Path, dest: Path, base: str | None, overlay: list[str]) -> None:
    """dest gets the working tree, or the files of commit `base` with the working-tree
    versions of the `overlay` paths on top (read with git archive: no git state changes)."""
    if base is None:
        copy_files(repo, dest, working_tree_files(repo))
        return
    archive = git("archive", "--format=tar", base, repo=repo).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    wanted = [f for f in working_tree_files(repo)
              if any(f == p.rstrip("/") or f.startswith(p.rstrip("/") + "/") for p in overlay)]
    copy_files(repo, dest, wanted)


BUILD_NATIVE = r"""
import os, runpy, shutil, sys, tempfile
root = sys.argv[1]
os.chdir(root)
ffi = runpy.run_path("csrc/host/build_native.py")["ffibuilder"]
name, source, ext, kw = ffi._assigned_source
for key in ("sources", "include_dirs"):
    kw[key] = [os.path.join(root, p) for p in kw[key]]
for old in os.listdir(os.path.join(root, "forkserver")):
    if old.startswith("_native.") and old.endswith(".so"):
        os.remove(os.path.join(root, "forkserver", old))
with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)  # away from pyproject.toml, which the compile step would try to read
    out = ffi.compile(tmpdir=tmp)
    shutil.copy(out, os.path.join(root, "forkserver", os.path.basename(out)))
"""


def build_native(scratch: Path, env: dict) -> None:
    """Builds forkserver/_native inside the scratch copy, from the scratch copy's csrc."""
    proc = subprocess.run([sys.executable, "-c", BUILD_NATIVE, str(scratch)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"building the cffi helpers failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def check_isolation(scratch: Path, env: dict) -> None:
    code = ("import forkserver, forkserver.native, forkserver.build as b; "
            "print(forkserver.__file__); print(forkserver.native.__file__); print(b.csrc_dir())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=scratch)
    if out.returncode != 0:
        raise RuntimeError(f"the scratch copy does not import: {out.stderr[-2000:]}")
    for line in out.stdout.split():
        if not Path(line).resolve().is_relative_to(scratch.resolve()):
            raise RuntimeError(f"the scratch copy imports code from outside itself: {line}")


# ---- running tests ----


def run_pytest(scratch: Path, env: dict, selection: list[str], junit: Path, timeout: float,
               stop_first: bool = True) -> tuple[str, list[str]]:
    """Returns (status, failing test ids): status is passed, failed, timeout or broken."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", "-o", "addopts=",
            f"--junitxml={junit}", *(["-x"] if stop_first else []), *selection]
    proc = subprocess.Popen(args, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and whatever it started: its own session
        proc.communicate()
        junit.unlink(missing_ok=True)
        return "timeout", []
    failing = []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                cls = case.get("classname", "")
                failing.append(f"{cls.replace('.', '/')}.py::{case.get('name')}" if cls else case.get("name"))
        junit.unlink()
    if proc.returncode == 0:
        return "passed", []
    if proc.returncode == 1:
        return "failed", failing
    return "broken", [f"pytest exit {proc.returncode}: {output.strip()[-300:]}"]


def find_anchor(root: Path, fault: Fault) -> tuple[Path | None, str, str, str]:
    """(the file, old, new) of the first variant of the fault whose old text occurs
    exactly once in the files fault.file matches; or None and why not."""
    files = sorted(p for p in root.glob(fault.file) if p.is_file())
    if not files:
        return None, "", "", f"no file matches {fault.file}"
    texts = {p: p.read_text() for p in files}
    why = []
    for old, new in fault.variants():
        hits = [(p, t.count(old)) for p, t in texts.items()]
        total = sum(n for _, n in hits)
        if total == 1:
            return next(p for p, n in hits if n), old, new, ""
        why.append("not found" if total == 0 else f"found {total} times")
    return None, "", "", f"old text {' / '.join(why)} in {fault.file}"


def union_selection(faults: list[Fault]) -> list[list[str]]:
    """The distinct selections, each a pytest argument list."""
    seen, out = set(), []
    for f in faults:
        key = tuple(f.selection)
        if key not in seen:
            seen.add(key)
            out.append(f.selection)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run these faults only (fnmatch patterns)")
    ap.add_argument("--list", action="store_true", help="list the faults and exit")
    ap.add_argument("--base", metavar="REV", help="start from the files of this commit instead of the working tree")
    ap.add_argument("--overlay", nargs="*", default=[], metavar="PATH",
                    help="with --base: take these paths from the working tree")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run on the unchanged copy")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--all", action="store_true",
                    help="run each selection to the end and name every test that fails (slower)")
    ap.add_argument("--selection", nargs="+", metavar="ARG", help="run these pytest arguments for every fault")
    args = ap.parse_args()

    faults = [f for f in FAULTS if not args.only or any(fnmatch.fnmatch(f.name, p) for p in args.only)]
    if args.list:
        for f in faults:
            *_, why = find_anchor(args.repo.resolve(), f)
            print(f"{f.name:28} {f.file:28} {f.what}" + (f"  [stale here: {why}]" if why else ""))
        return 0
    if not faults:
        print("no fault matches --only", file=sys.stderr)
        return 2

    scratch_root = Path(tempfile.mkdtemp(prefix="forkserver-mutants-"))
    scratch = scratch_root / "repo"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORKSERVER_", "__AFL_"))}
    env.update(PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1", FORKSERVER_CACHE_DIR=str(scratch_root / "cache"),
               TMPDIR=str(scratch_root / "tmp"))
    (scratch_root / "tmp").mkdir()
    junit = scratch_root / "junit.xml"
    t_start = time.monotonic()
    try:
        make_scratch(args.repo.resolve(), scratch, args.base, args.overlay)
        build_native(scratch, env)
        check_isolation(scratch, env)
        print(f"scratch copy: {scratch}" + (f" (commit {args.base} + working-tree {' '.join(args.overlay)})"
                                            if args.base else " (working tree)"), flush=True)

        if not args.no_baseline:
            bad = []
            for selection in [args.selection] if args.selection else union_selection(faults):
                status, failing = run_pytest(scratch, env, selection, junit, args.timeout, stop_first=False)
                if status != "passed":
                    bad.append((" ".join(selection), status, failing))
            if bad:
                print("the unchanged copy does not pass; nothing can be judged:")
                for selection, status, failing in bad:
                    print(f"  {selection}: {status} {failing[:5]}")
                return 2
            print(f"baseline: every selection passes on the unchanged copy ({time.monotonic() - t_start:.0f} s)",
                  flush=True)

        caught, missed, stale = 0, 0, 0
        for fault in faults:
            path, old, new, why = find_anchor(scratch, fault)
            if path is None:
                stale += 1
                print(f"stale    {fault.name:28} {why}", flush=True)
                continue
            original = path.read_text()
            rel = path.relative_to(scratch).as_posix()
            native = rel.startswith(NATIVE_SOURCES)
            t0 = time.monotonic()
            try:
                path.write_text(original.replace(old, new, 1))
                if native:
                    build_native(scratch, env)
                status, failing = run_pytest(scratch, env, args.selection or fault.selection, junit, args.timeout,
                                             stop_first=not args.all)
            finally:
                path.write_text(original)
                if native:
                    build_native(scratch, env)
            took = f"({time.monotonic() - t0:.0f} s)"
            if status == "failed":
                caught += 1
                first = failing[0] if failing else "?"
                print(f"caught   {fault.name:28} {first} {took}", flush=True)
                if args.all:
                    for other in failing[1:]:
                        print(f"         {'':28} {other}", flush=True)
            elif status == "timeout":
                caught += 1
                print(f"caught   {fault.name:28} its selection hung past {args.timeout:.0f} s {took}", flush=True)
            elif status == "passed":
                missed += 1
                print(f"missed   {fault.name:28} {' '.join(fault.selection)} passed {took}", flush=True)
            else:
                stale += 1
                print(f"stale    {fault.name:28} the selection did not run: {failing[0] if failing else status}",
                      flush=True)
        summary = f"{caught} caught, {missed} missed"
        if stale:
            summary += f" ({stale} stale: not judged, update their old text)"
        print(f"{summary}; {time.monotonic() - t_start:.0f} s in all")
        return 0 if missed == 0 else 1
    finally:
        if args.keep:
            print(f"kept {scratch_root}")
        else:
            shutil.rmtree(scratch_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

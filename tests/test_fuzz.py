"""`forkserver fuzz`: the scheduler's choices, calibration, objectives, the monitor, and
whole campaigns from the command line (the maze crash in every mode, resume after
SIGKILL, a target that crashes often, a hang, refusals)."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPORA, HARNESS_DIR, REPO, TEST_HARNESS_DIR, cli, cli_cmd, one_error_line
from forkserver.build import build
from forkserver.calibration import calibrate
from forkserver.corpus import Corpus, Entry
from forkserver.executors import SnapshotExecutor
from forkserver.fuzzer import read_stats
from forkserver.monitor import Monitor, Status, make_monitor
from forkserver.scheduler import HAVOC_CYCLES_INIT, Scheduler
from forkserver.target import Target

EXIT_ON_CRASH = 77


def entry(i: int, edges: list[int], exec_us: float = 100.0, size: int = 10, **kw) -> Entry:
    return Entry(i, Path(f"/nonexistent/{i}"), size, exec_us, np.array(edges, dtype=np.uint32), **kw)


# ---- scheduler ----

def small_corpus() -> tuple[Corpus, Scheduler]:
    corpus = Corpus()
    sched = Scheduler(corpus, np.random.default_rng(1))
    for e in (entry(0, [1, 2, 3], exec_us=500, size=100),   # covers all, but slow and big
              entry(1, [1, 2], exec_us=50, size=10),        # cheapest for 1 and 2
              entry(2, [3], exec_us=60, size=10),           # cheapest for 3
              entry(3, [2], exec_us=80, size=10)):          # never the cheapest
        corpus.add(e)
        sched.update_top_rated(e)
    return corpus, sched


def test_cull_favours_the_cheapest_entries_that_cover_every_edge():
    corpus, sched = small_corpus()
    sched.cull()
    assert [e.favored for e in corpus.entries] == [False, True, True, False]
    assert sched.pending_favored == 2
    assert sched.top_rated == {1: corpus[1], 2: corpus[1], 3: corpus[2]}


def test_while_favoured_entries_wait_the_others_are_mostly_skipped():
    corpus, sched = small_corpus()
    picks = []
    for _ in range(2):
        e = sched.next()
        picks.append(e.id)
        sched.mark_fuzzed(e)
    assert picks == [1, 2], "the two favoured entries come first"
    assert sched.pending_favored == 0
    later = [sched.next().id for _ in range(400)]
    assert set(later) == {0, 1, 2, 3}, "with ten entries or fewer, AFL skips nothing once no favourite waits"
    for i in range(4, 16):  # a larger queue: non-favoured entries are now skipped 75-95% of the time
        corpus.add(entry(i, [1, 2, 3], exec_us=900, size=500))
    later = [sched.next().id for _ in range(3000)]
    most_picked_other = max(later.count(i) for i in range(4, 16))
    assert min(later.count(1), later.count(2)) > 2.5 * most_picked_other, {i: later.count(i) for i in range(16)}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sets(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 1000),
                          st.integers(1, 100)), min_size=1, max_size=25))
def test_favoured_entries_cover_every_edge_and_each_earns_its_place(specs):
    corpus = Corpus()
    sched = Scheduler(corpus, np.random.default_rng(0))
    for i, (edges, us, size) in enumerate(specs):
        e = corpus.add(entry(i, sorted(edges), exec_us=us, size=size))
        sched.update_top_rated(e)
    sched.cull()
    favoured = [e for e in corpus.entries if e.favored]
    every_edge = set().union(*(e.edges.tolist() for e in corpus.entries))
    assert set().union(*(e.edges.tolist() for e in favoured)) == every_edge
    for e in favoured:
        assert any(sched.top_rated[edge] is e for edge in e.edges.tolist()), "favoured only as some edge's best"
    for edge, best in sched.top_rated.items():
        cheapest = min(e.fav_factor for e in corpus.entries if edge in e.edges.tolist())
        assert best.fav_factor == cheapest


def test_schedule_is_a_function_of_the_seed():
    def picks(seed):
        corpus, sched = small_corpus()
        sched.rng = np.random.default_rng(seed)
        return [sched.next().id for _ in range(200)]

    assert picks(7) == picks(7)
    assert picks(7) != picks(8)


def test_energy_rewards_fast_and_wide_entries():
    corpus = Corpus()
    sched = Scheduler(corpus, np.random.default_rng(0))
    fast_wide = corpus.add(entry(0, list(range(40)), exec_us=10))
    slow_narrow = corpus.add(entry(1, [1], exec_us=1000))
    middle = corpus.add(entry(2, list(range(10)), exec_us=100))
    assert sched.energy(fast_wide) > sched.energy(middle) > sched.energy(slow_narrow)
    alike = Corpus()
    sched = Scheduler(alike, np.random.default_rng(0))
    average = [alike.add(entry(i, list(range(10)), exec_us=100)) for i in range(3)][0]
    assert sched.energy(average) == HAVOC_CYCLES_INIT, "an average entry, never fuzzed: AFL's first-time cycles"
    average.was_fuzzed = True
    assert sched.energy(average) == HAVOC_CYCLES_INIT // 4
    average.depth = 9
    assert sched.energy(average) == 3 * HAVOC_CYCLES_INIT // 4, "deep entries get more"


# ---- calibration and the monitor ----

def test_calibration_finds_the_variable_edges(tmp_path):
    binary = build([TEST_HARNESS_DIR / "variable_edges.c"], tmp_path / "variable")
    steady = build([HARNESS_DIR / "maze.c"], tmp_path / "maze")
    with Target.from_command([str(binary)]) as t, SnapshotExecutor(t, 1000, cpu=0) as ex:
        runs = [calibrate(ex, b"A", runs=32) for _ in range(4)]
    variable = set().union(*(set(r.variable.tolist()) for r in runs))
    # the two branches and the two functions they call; the input's own edges do not vary
    assert 2 <= len(variable) <= 4, f"the clock's branches vary, nothing else: {sorted(variable)}"
    assert all(set(r.edges.tolist()) - variable for r in runs), "steady edges are not counted as variable"
    with Target.from_command([str(steady)]) as t, SnapshotExecutor(t, 1000, cpu=0) as ex:
        cal = calibrate(ex, b"MAZE!EX", runs=8)
    assert cal.variable.size == 0 and cal.edges.size > 5 and cal.exec_us > 0


def test_plain_monitor_lines_and_summary():
    out = io.StringIO()
    mon = make_monitor(out)
    assert type(mon) is Monitor, "not a terminal: plain lines"
    st = Status(mode="snapshot", backend="pagemap-scan", execs=1234, execs_per_sec=99.4, corpus=5, edges=17,
                crashes=1, total_crashes=3)
    mon.start(st)
    mon.update(st, force=True)
    mon.event("new crash (signal 6): forkserver run -i c -- t")
    mon.stop(st, "interrupted", [("forkserver run --mode snapshot -i c -- t", "signal 6")])
    text = out.getvalue()
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] .*execs 1234 \(99/s\) +corpus 5 .*edges 17 +crashes 1",
                     text, re.M), text
    assert "stopped (interrupted)" in text and "crashes 1 saved (3 crashing runs)" in text
    assert "  forkserver run --mode snapshot -i c -- t    # signal 6" in text


def test_live_panel_renders():
    out = io.StringIO()
    mon = make_monitor(out, live=True)
    st = Status(mode="snapshot", backend="uffd-wp", execs=10, corpus=2, edges=3, stability=97.5)
    mon.start(st)
    mon.update(st, force=True)
    mon.stop(st, "--max-time 1 s reached", [])
    text = out.getvalue()
    for word in ("exec/s", "corpus", "edges", "crashes", "hangs", "stability", "97.50%", "last find",
                 "snapshot (uffd-wp)"):
        assert word in text, word


# ---- campaigns ----

def fuzz(*args, timeout=240, cwd=None):
    return cli("fuzz", "--plain", "--cpu", "0", *args, timeout=timeout, cwd=cwd)


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("id:"))


@pytest.mark.parametrize("mode", ["snapshot", "fork"])
def test_finds_the_maze_crash_and_stops_on_it(tmp_path, mode):
    out = tmp_path / "out"
    seeds = CORPORA / "maze"
    if mode == "fork":  # ~15x slower: start it next to the crash, one byte away
        seeds = tmp_path / "seeds"
        seeds.mkdir()
        (seeds / "fuz").write_bytes(b"FUZ")
    # typically 1-10 s in either mode; the time to a find has a long tail, hence the room
    proc = fuzz("-i", seeds, "-o", out, "--mode", mode, "-s", "3", "--max-time", "300",
                "--exit-on-crash", "--", HARNESS_DIR / "maze.c", timeout=400)
    assert proc.returncode == EXIT_ON_CRASH, proc.stderr[-3000:]
    crashes = out / "default" / "crashes"
    (name,) = entries(crashes)
    assert re.fullmatch(r"id:000000,sig:06,src:\d{6},time:\d+,execs:\d+,op:havoc", name)
    assert (crashes / name).read_bytes().startswith(b"FUZZ")
    queue = entries(out / "default" / "queue")
    seed_names = sorted(p.name for p in seeds.iterdir())
    assert queue[:len(seed_names)] == [f"id:{i:06d},time:0,execs:0,orig:{n}" for i, n in enumerate(seed_names)]
    assert any(n.endswith(",+cov") for n in queue[3:]), "the way to the crash passes through new entries"
    repro = re.search(r"^  (forkserver run .*?)    # signal 6$", proc.stderr, re.M)
    assert repro, proc.stderr[-2000:]
    again = subprocess.run(repro.group(1).replace("forkserver", " ".join(cli_cmd()), 1), shell=True,
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert re.search(r"crash +signal 6", again.stdout), (again.stdout, again.stderr)
    stats = read_stats(out / "default" / "fuzzer_stats")
    assert stats["saved_crashes"] == "1" and int(stats["execs_done"]) > 0
    assert stats["target_mode"].startswith(mode)


def test_the_embedded_default_runs_on_the_bundled_harness(tmp_path):
    shutil.copytree(REPO / "harnesses", tmp_path / "harnesses")
    shutil.copytree(REPO / "corpora", tmp_path / "corpora")
    proc = fuzz("harnesses/maze.c", "--max-time", "120", "--exit-on-crash", cwd=tmp_path)
    assert proc.returncode == EXIT_ON_CRASH, proc.stderr[-3000:]
    assert len(entries(tmp_path / "fuzz-out" / "maze" / "default" / "crashes")) == 1
    assert "seeds " + str(tmp_path / "corpora" / "maze") in proc.stderr
    again = fuzz("harnesses/maze.c", "--runs", "2000", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "fuzz-out" / "maze-2" / "default" / "queue").is_dir(), "a fresh directory each time"


def test_crashes_are_deduplicated_and_dictionaries_are_used(tmp_path):
    out = tmp_path / "out"
    dictionary = tmp_path / "maze.dict"
    dictionary.write_text('crash="FUZZ"\nexit="MAZE!EXIT"\n')
    proc = fuzz("-i", CORPORA / "maze", "-o", out, "-x", dictionary, "--runs", "60000", "--json", "--",
                HARNESS_DIR / "maze.c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["saved_crashes"] == 1 and summary["execs"] >= 60000 and summary["mode"] == "snapshot"
    assert summary["crashes"][0]["signal"] == 6 and summary["crashes"][0]["reproduce"].startswith("forkserver run")
    totals = re.search(r"crashes (\d+) saved \((\d+) crashing runs\)", proc.stderr)
    assert totals and int(totals.group(1)) == 1 and int(totals.group(2)) > 10, proc.stderr[-2000:]
    stats = read_stats(out / "default" / "fuzzer_stats")
    # --runs N stops after N executions, plus the calibration runs of the last batch's finds
    assert 60000 <= int(stats["execs_done"]) <= 60000 + 8 * 8
    # the far exit (9 bytes deep) is found through the dictionary token
    assert any((out / "default" / "queue" / n).read_bytes().startswith(b"MAZE!EXIT")
               for n in entries(out / "default" / "queue"))


def test_sigkill_then_resume_loses_nothing(tmp_path):
    out = tmp_path / "out"
    inst = out / "default"
    proc = subprocess.Popen(cli_cmd() + ["fuzz", "--plain", "--cpu", "0", "-i", str(CORPORA / "ini_parser"),
                                         "-o", str(out), "-s", "5", "--", str(HARNESS_DIR / "ini_parser.c")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((inst / "queue").is_dir() and len(entries(inst / "queue")) >= 12):
        time.sleep(0.2)
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.relative_to(inst): p.read_bytes() for sub in ("queue", "crashes", "hangs")
              for p in (inst / sub).iterdir() if p.name.startswith("id:")}
    assert len([p for p in before if p.parts[0] == "queue"]) >= 12, "the campaign made progress before the kill"
    refused = fuzz("-i", CORPORA / "ini_parser", "-o", out, "--", HARNESS_DIR / "ini_parser.c")
    assert "holds an earlier run: resume it with `-i -` or --resume" in one_error_line(refused)
    resumed = fuzz("-i", "-", "-o", out, "-s", "6", "--max-time", "8", "--", HARNESS_DIR / "ini_parser.c")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(rf"resumed {len([p for p in before if p.parts[0] == 'queue'])} queue entries", resumed.stderr)
    after = {p.relative_to(inst): p.read_bytes() for sub in ("queue", "crashes", "hangs")
             for p in (inst / sub).iterdir() if p.name.startswith("id:")}
    lost = [str(p) for p, data in before.items() if after.get(p) != data]
    assert not lost, f"entries lost or changed by the resume: {lost}"
    ids = [int(n[3:9]) for n in entries(inst / "queue")]
    assert ids == list(range(len(ids))), "queue ids stay contiguous"
    assert not list(inst.glob(".tmp-*"))


def test_a_target_crashing_on_a_tenth_of_inputs_keeps_fuzzing(tmp_path):
    binary = build([TEST_HARNESS_DIR / "crash_tenth.c"], tmp_path / "crash_tenth")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a").write_bytes(b"hello")
    proc = fuzz("-i", seeds, "-o", tmp_path / "out", "-s", "1", "--runs", "20000", "--", binary)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"crashes (\d+) saved \((\d+) crashing runs\)", proc.stderr)
    assert m, proc.stderr[-2000:]
    rate = int(m.group(2)) / 20000
    assert 0.05 < rate < 0.15, f"{rate:.1%} of the runs crashed, not about 10%"
    # one crash site; the summing loop's vectorised and scalar paths make a few paths to it
    assert 1 <= int(m.group(1)) <= 8, "crashes are de-duplicated by their path"


def test_a_chatty_target_does_not_pile_up_its_stderr(tmp_path):
    """chatty.c writes 2 KiB to stderr per input (~100 MB/s at fuzzing rates): the
    target's stderr file stays around StderrLog.LIMIT however long the run."""
    from forkserver.executors.base import StderrLog
    binary = build([TEST_HARNESS_DIR / "chatty.c"], tmp_path / "chatty")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a").write_bytes(b"hello")
    run_base = tmp_path / "tmp"
    run_base.mkdir()
    proc = subprocess.Popen([*cli_cmd(), "fuzz", "--plain", "-i", seeds, "-o", tmp_path / "out", "--max-time", "4",
                             "--", binary], env={**os.environ, "TMPDIR": str(run_base)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    largest = 0
    while proc.poll() is None:
        for f in run_base.glob("forkserver-*/target-*/stderr"):
            try:
                largest = max(largest, f.stat().st_size)
            except OSError:
                pass
        time.sleep(0.02)
    stats = (tmp_path / "out" / "default" / "fuzzer_stats").read_text()
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    execs = int(re.search(r"execs_done\s*:\s*(\d+)", stats).group(1))
    assert execs * 2048 > 8 * StderrLog.LIMIT, "the run wrote enough to matter"
    assert 0 < largest < 3 * StderrLog.LIMIT, f"the stderr file reached {largest} bytes"


def test_hangs_are_confirmed_and_saved(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a").write_bytes(b"HANX")
    proc = fuzz("-i", seeds, "-o", tmp_path / "out", "-t", "20", "--hang-timeout", "100", "--max-time", "60",
                "--runs", "30000", "-s", "2", "--", HARNESS_DIR / "hang.c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    hangs = tmp_path / "out" / "default" / "hangs"
    names = entries(hangs)
    assert names and all((hangs / n).read_bytes().startswith(b"HANG") for n in names), names
    assert re.search(r"hangs [1-9]\d* saved \(\d+ timeouts\)", proc.stderr)


def test_refusals_are_one_clear_line(tmp_path):
    maze = str(HARNESS_DIR / "maze.c")
    assert "no seeds given" in one_error_line(fuzz("-o", tmp_path / "o", "--", str(REPO / "README.md")))
    assert "input not found" in one_error_line(fuzz("-i", tmp_path / "none", "-o", tmp_path / "o", "--", maze))
    assert "not an ELF" in one_error_line(fuzz("-i", CORPORA / "maze", "-o", tmp_path / "o", "--",
                                                REPO / "README.md"))
    assert not (tmp_path / "o").exists(), "nothing is written for a target that cannot run"
    assert "has no persistent loop" in one_error_line(fuzz("-i", CORPORA / "maze", "-o", tmp_path / "o", "--mode",
                                                            "persistent", "--", maze))
    dies = fuzz("-i", CORPORA / "maze", "-o", tmp_path / "o", "--", TEST_HARNESS_DIR / "init_abort.c")
    assert dies.returncode != 0 and "during initialisation" in dies.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists(), "a target that dies during start-up leaves no output directory"
    crashing = tmp_path / "crashing"
    crashing.mkdir()
    (crashing / "c").write_bytes(b"FUZZ")
    proc = fuzz("-i", crashing, "-o", tmp_path / "o2", "--", maze)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "forkserver: error: none of the 1 seeds runs cleanly (c crashes)"), proc.stderr
    assert len(entries(tmp_path / "o2" / "default" / "crashes")) == 1, "the crashing seed is kept as a crash"
    assert "nothing to resume" in one_error_line(fuzz("-i", "-", "-o", tmp_path / "o3", "--", maze))
    assert "is shorter than -t 100" in one_error_line(fuzz("-i", CORPORA / "maze", "-o", tmp_path / "o4", "-t", "100",
                                                           "--hang-timeout", "50", "--", maze))
    again = fuzz("-i", crashing, "-o", tmp_path / "o2", "--", maze)
    assert "holds an earlier run" not in again.stderr, "a run that queued nothing is no run to protect"
    saved = entries(tmp_path / "o2" / "default" / "crashes")
    assert [n[:9] for n in saved] == ["id:000000", "id:000001"], f"ids carry on, nothing overwritten: {saved}"


def test_auto_mode_falls_back_to_fork_and_snapshot_mode_says_why(tmp_path):
    target = HARNESS_DIR / "thread_after_snapshot.c"
    proc = fuzz("-i", CORPORA / "thread_after_snapshot", "-o", tmp_path / "auto", "--runs", "3000", "--", target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"snapshot mode cannot run this target exactly \(.*thread.*\): fork mode from now on",
                     proc.stderr), proc.stderr[-2000:]
    assert read_stats(tmp_path / "auto" / "default" / "fuzzer_stats")["target_mode"] == "fork"
    strict = fuzz("-i", CORPORA / "thread_after_snapshot", "-o", tmp_path / "strict", "--mode", "snapshot",
                  "--runs", "3000", "--", target)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert re.search(r"forkserver: error: none of the 2 seeds runs cleanly \(bytes: .*thread", strict.stderr), \
        strict.stderr[-2000:]


def test_fuzzes_an_afl_persistent_build(tmp_path):
    afl_cc = shutil.which("afl-clang-fast")
    assert afl_cc, "afl-clang-fast is missing: scripts/setup.sh installs afl++"
    binary = tmp_path / "ini.afl"
    subprocess.run([afl_cc, "-O2", f"-I{REPO / 'scripts' / 'afl'}", str(HARNESS_DIR / "ini_parser.c"),
                    str(REPO / "scripts" / "afl" / "ini_parser_persistent.c"), "-o", str(binary)], check=True,
                   capture_output=True)
    out = tmp_path / "out"
    proc = fuzz("-i", CORPORA / "ini_parser", "-o", out, "--runs", "20000", "--", binary)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fuzzing in persistent mode" in proc.stderr, "auto picks persistent mode for an AFL++ persistent build"
    stats = read_stats(out / "default" / "fuzzer_stats")
    assert stats["target_mode"] == "persistent" and 20000 <= int(stats["execs_done"]) <= 20000 + 8 * 8
    assert int(stats["corpus_found"]) > 0, "new entries were found"


def test_afl_tools_read_a_real_campaign(tmp_path):
    out = tmp_path / "sync"
    proc = fuzz("-i", CORPORA / "maze", "-o", out, "--max-time", "11", "--", HARNESS_DIR / "maze.c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len((out / "default" / "plot_data").read_text().splitlines()) >= 4, "a header and a row every 5 s"
    whatsup = subprocess.run(["afl-whatsup", "-s", "-d", str(out)], capture_output=True, text=True, timeout=60)
    assert whatsup.returncode == 0, whatsup.stderr
    assert re.search(r"Crashes saved\s*:\s*1\b", whatsup.stdout) and "Dead or remote : 1" in whatsup.stdout, \
        whatsup.stdout  # -d: a finished campaign counts too
    plot = subprocess.run(["afl-plot", str(out / "default"), str(tmp_path / "plots")], capture_output=True,
                          text=True, timeout=120)
    assert plot.returncode == 0, plot.stdout + plot.stderr
    assert (tmp_path / "plots" / "exec_speed.png").stat().st_size > 0


# ---- comparison feedback ----

MAGIC_GATES = (b"\x00\x90\x5a\x4d", b"\x55\x1e\xed\x5e\xfe\xca\x0d\xf0", b"FZ-GO!", b"snapshot\0")


def test_comparison_feedback_opens_the_magic_gates(tmp_path):
    """magic_gates: a 32-bit and a 64-bit magic, a 6-byte memcmp token and a strcmp
    keyword, each guarding the next. With --cmplog the crash behind all four is reached
    from the bundled seed, through entries the comparison stage found; its work is in
    fuzzer_stats, and the keywords it learnt are dictionary tokens. (Havoc alone does not
    pass the first gate in minutes: BENCHMARKS.md.)"""
    out = tmp_path / "out"
    proc = fuzz("--cmplog", "-o", out, "-s", "1", "--max-time", "120", "--exit-on-crash", "--",
                HARNESS_DIR / "magic_gates.c", timeout=300)
    assert proc.returncode == EXIT_ON_CRASH, proc.stderr[-3000:]
    (name,) = entries(out / "default" / "crashes")
    assert (out / "default" / "crashes" / name).read_bytes().startswith(b"".join(MAGIC_GATES[:3]) + b"snapshot")
    queue = entries(out / "default" / "queue")
    assert sum(",op:i2s" in n for n in queue) >= 3, queue
    stats = read_stats(out / "default" / "fuzzer_stats")
    assert int(stats["cmplog_runs"]) >= 2 and int(stats["i2s_finds"]) >= 3 and int(stats["i2s_tokens"]) >= 1
    assert int(stats["i2s_candidates"]) >= int(stats["i2s_finds"])


def test_comparison_feedback_takes_a_cmplog_binary_and_refuses_others(tmp_path):
    plain = build([HARNESS_DIR / "magic_gates.c"], tmp_path / "magic")
    cmplog = build([HARNESS_DIR / "magic_gates.c"], tmp_path / "magic.cmplog", cmplog=True)
    proc = fuzz("-i", CORPORA / "magic_gates", "-o", tmp_path / "o", "-c", cmplog, "--max-time", "120",
                "--exit-on-crash", "--", plain, timeout=300)
    assert proc.returncode == EXIT_ON_CRASH, proc.stderr[-3000:]
    again = fuzz("-i", CORPORA / "magic_gates", "-o", tmp_path / "o0", "-c", "0", "--max-time", "120",
                 "--exit-on-crash", "--", cmplog, timeout=300)
    assert again.returncode == EXIT_ON_CRASH, again.stderr[-3000:]
    assert "does not log comparisons" in one_error_line(
        fuzz("-i", CORPORA / "magic_gates", "-o", tmp_path / "o2", "-c", plain, "--", plain))
    assert "does not log comparisons" in one_error_line(
        fuzz("-i", CORPORA / "magic_gates", "-o", tmp_path / "o3", "-c", "0", "--", plain))
    assert "from a harness source" in one_error_line(
        fuzz("-i", CORPORA / "magic_gates", "-o", tmp_path / "o4", "--cmplog", "--", plain))
    assert not any((tmp_path / d).exists() for d in ("o2", "o3", "o4")), "nothing is written for a refused run"

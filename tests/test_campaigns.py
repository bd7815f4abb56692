"""Campaigns of many instances: afl-fuzz's sync directory both ways (-M/-S), and
`fuzz -j N` (pinned worker processes sharing finds and crash uniqueness)."""
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

from conftest import CORPORA, HARNESS_DIR, REPO, cli, cli_cmd, one_error_line
from forkserver.cpu import allowed_cpus
from forkserver.feedbacks import simplify
from forkserver.fuzzer import read_stats
from forkserver.monitor import Monitor
from forkserver.shared_crashes import SharedCrashes
from forkserver.sync import SyncDir


def _queue(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name.startswith("id:")}


def _u32(path: Path) -> int:
    return struct.unpack("<I", path.read_bytes()[:4])[0]


# ---- the sync directory ----

def _entry(instance: Path, ident: int, data: bytes) -> None:
    (instance / "queue").mkdir(parents=True, exist_ok=True)
    (instance / "queue" / f"id:{ident:06d},time:0,execs:0,orig:x").write_bytes(data)


def test_a_secondary_reads_mains_only_and_records_what_it_imported(tmp_path):
    """afl-fuzz's rules: a secondary imports from instances marked is_main_node, a main
    from every instance; .synced/PEER holds the next id (u32), written only once the
    batch ran, so a stop in between imports it again."""
    _entry(tmp_path / "afl_main", 0, b"m0")
    _entry(tmp_path / "afl_main", 1, b"m1")
    (tmp_path / "afl_main" / "is_main_node").touch()
    _entry(tmp_path / "other", 0, b"o0")
    (tmp_path / ".hidden" / "queue").mkdir(parents=True)
    secondary = SyncDir(tmp_path, "ours", main=False)
    batches = list(secondary.pending())
    assert [(b.peer, b.entries, b.next_id) for b in batches] == [("afl_main", [(0, b"m0"), (1, b"m1")], 2)]
    assert list(secondary.pending())[0].next_id == 2  # not recorded yet: offered again
    secondary.done(batches[0])
    assert _u32(tmp_path / "ours" / ".synced" / "afl_main") == 2
    assert list(secondary.pending()) == []
    _entry(tmp_path / "afl_main", 2, b"m2")
    assert [b.entries for b in secondary.pending()] == [[(2, b"m2")]]

    main = SyncDir(tmp_path, "ours_main", main=True)
    assert (tmp_path / "ours_main" / "is_main_node").exists()
    assert sorted(b.peer for b in main.pending()) == ["afl_main", "other"]  # "ours" has no queue yet


def test_a_secondary_stands_in_as_main_while_the_directory_has_none(tmp_path):
    """afl-fuzz's election: a secondary that finds peers but no main marks itself main and
    imports from everyone; of two stand-ins, the one whose name sorts first stays; a
    main whose name sorts first makes a stand-in step down. Alone, nobody stands in."""
    alone = SyncDir(tmp_path / "alone", "s1", main=False)
    assert alone.peers() == [] and not (tmp_path / "alone" / "s1" / "is_main_node").exists()

    sync = tmp_path / "sync"
    _entry(sync / "sec_afl", 0, b"a0")  # an afl-fuzz secondary: no marker
    s1 = SyncDir(sync, "s1", main=False)
    assert s1.peers() == ["sec_afl"] and (sync / "s1" / "is_main_node").exists()
    assert [b.peer for b in s1.pending()] == ["sec_afl"]
    s2 = SyncDir(sync, "s2", main=False)
    assert s2.peers() == ["s1"] and not (sync / "s2" / "is_main_node").exists()

    s2._elect(True, [])  # both stood in at once
    assert s1.peers() == ["s2", "sec_afl"]  # s1 sorts first: stays
    assert s2.peers() == ["s1"] and not (sync / "s2" / "is_main_node").exists()

    (sync / "main").mkdir()
    (sync / "main" / "is_main_node").touch()
    assert s1.peers() == ["main"] and not (sync / "s1" / "is_main_node").exists()
    assert SyncDir(sync, "s1", main=False).peers() == ["main"]  # resumed: a secondary again


def _claim_in_child(root: str, hit: int) -> bool:
    counts = np.zeros(4096, dtype=np.uint8)
    counts[[5, hit]] = 3
    return SharedCrashes(Path(root)).claim(simplify(counts), None)


def test_shared_crashes_are_claimed_once_across_processes(tmp_path):
    """Eight processes report the same crashing trace at once: one saves it. A trace
    with a new edge, or a sanitizer summary not seen, is new again; a larger map too."""
    with get_context("spawn").Pool(8) as pool:
        claims = pool.starmap(_claim_in_child, [(str(tmp_path), 100)] * 8)
    assert sorted(claims) == [False] * 7 + [True]
    shared = SharedCrashes(tmp_path)
    assert _claim_in_child(str(tmp_path), 101) is True
    counts = np.zeros(4096, dtype=np.uint8)
    counts[[5, 100]] = 1
    assert shared.claim(simplify(counts), None) is False
    assert shared.claim(simplify(counts), "heap-buffer-overflow in f") is True
    assert shared.claim(simplify(counts), "heap-buffer-overflow in f") is False
    big = np.zeros(1 << 16, dtype=np.uint8)
    big[[5, 100, 40000]] = 1
    assert shared.claim(simplify(big), None) is True


def test_the_workers_figures_add_up_in_one_panel():
    """Sums of what adds up (execs, exec/s, crashes), the largest of the rest; a row per
    worker in the live panel, one still starting."""
    from forkserver.monitor import Status, make_monitor
    from forkserver.parallel import aggregate_status

    a = Status(mode="snapshot", backend="pagemap-scan", execs=1000, execs_per_sec=80000.0, corpus=10, edges=20,
               crashes=1, stability=99.0)
    b = Status(mode="snapshot", backend="pagemap-scan", execs=3000, execs_per_sec=70000.0, corpus=12, edges=18,
               crashes=2, stability=100.0)
    st = aggregate_status([("main", 0, a), ("w1", 1, b), ("w2", None, None)], started=time.time())
    assert (st.execs, st.execs_per_sec, st.crashes, st.corpus, st.edges, st.stability) == \
        (4000, 150000.0, 3, 12, 20, 99.0)
    out = io.StringIO()
    monitor = make_monitor(out, live=True)
    monitor.start(st)
    monitor.stop(st, "--max-time 1 s reached", [])
    text = out.getvalue()
    for word in ("forkserver fuzz -j 3", "main", "w1", "w2", "starting", "80,000", "70,000", "150,000"):
        assert word in text, (word, text)


# ---- afl-fuzz and us in one directory ----

AFL_ENV = dict(AFL_NO_UI="1", AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1", AFL_NO_AFFINITY="1",
               AFL_IMPORT_FIRST="1")


def test_afl_fuzz_main_and_our_secondary_import_each_others_finds(bins, tmp_path):
    """afl-fuzz -M is seeded with one door of two_doors, `forkserver fuzz -S` with the
    other; neither can guess the other's 8-byte word, so each side's entries behind the
    other door came from the peer."""
    assert shutil.which("afl-fuzz"), "afl-fuzz is missing: scripts/setup.sh installs afl++"
    for side, word in (("left", b"LEFTDOORaz"), ("right", b"RIGHTDORby")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "seed").write_bytes(word)
    sync = tmp_path / "sync"
    ours = subprocess.Popen(cli_cmd() + ["fuzz", "-S", "ours", "-i", str(tmp_path / "right"), "-o", str(sync),
                                         "--max-time", "16", "--plain", "--json", "--", str(bins["two_doors"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not (sync / "ours" / "queue").is_dir() or not _queue(sync / "ours" / "queue"):
            assert time.monotonic() < deadline and ours.poll() is None, ours.stderr.read() if ours.poll() else ""
            time.sleep(0.2)
        subprocess.run(["afl-fuzz", "-M", "main", "-V", "8", "-i", str(tmp_path / "left"), "-o", str(sync), "--",
                        str(bins["two_doors"])], env=dict(os.environ, **AFL_ENV), capture_output=True, timeout=120,
                       start_new_session=True)
        out, err = ours.communicate(timeout=60)
    finally:
        if ours.poll() is None:
            os.killpg(ours.pid, signal.SIGKILL)
    assert ours.returncode == 0, err
    afl_queue, our_queue = _queue(sync / "main" / "queue"), _queue(sync / "ours" / "queue")
    from_us = [name for name, data in afl_queue.items() if ",sync:ours," in name and data.startswith(b"RIGHTDOR")]
    from_afl = [name for name, data in our_queue.items() if ",sync:main," in name and data.startswith(b"LEFTDOOR")]
    assert from_us, list(afl_queue)
    assert from_afl, list(our_queue)
    summary = json.loads(out)
    assert summary["imported"] >= len([n for n in our_queue if ",sync:" in n]) >= 1
    assert int(read_stats(sync / "ours" / "fuzzer_stats")["corpus_imported"]) == summary["imported"]
    assert _u32(sync / "ours" / ".synced" / "main") >= 1


# ---- -j N ----

def test_fuzz_j2_runs_two_pinned_workers_that_save_a_crash_once(bins, tmp_path):
    """Two workers load the same seeds, one of which crashes: the crash is saved by one
    of them only. Each worker has its own fuzzer_stats and is pinned to its own CPU
    (when two are allowed); after the first sync period (5 s), the secondary has looked
    at the main's queue and the other way round."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "hello").write_bytes(b"hello")
    (seeds / "segv").write_bytes(b"SEGV")
    out = tmp_path / "out"
    proc = cli("fuzz", "-j", "2", "-i", seeds, "-o", out, "--max-time", "6", "--plain", "--json", "--",
               bins["crash"], timeout=180)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert [w["name"] for w in summary["workers"]] == ["main", "w1"]
    assert [w["main"] for w in summary["workers"]] == [True, False]
    assert all(w["crashing_runs"] >= 1 for w in summary["workers"]), summary["workers"]
    segv_saved = [p for name in ("main", "w1") for p in (out / name / "crashes").iterdir()
                  if p.name.startswith("id:") and p.read_bytes().startswith(b"SEGV")]
    assert len(segv_saved) == 1, segv_saved
    stats = {name: read_stats(out / name / "fuzzer_stats") for name in ("main", "w1")}
    assert summary["execs"] == sum(int(s["execs_done"]) for s in stats.values()) > 0
    pinned = [int(s["cpu_affinity"]) for s in stats.values()]
    allowed = allowed_cpus()
    assert pinned == (allowed[:2] if len(allowed) >= 2 else [allowed[0]] * 2), pinned
    assert (out / "main" / "is_main_node").exists() and not (out / "w1" / "is_main_node").exists()
    assert _u32(out / "w1" / ".synced" / "main") >= 2 and _u32(out / "main" / ".synced" / "w1") >= 2


def _target_processes(binary: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe") == str(binary):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_a_worker_killed_mid_run_is_restarted_on_its_own_queue(bins, tmp_path):
    """SIGKILL to one worker: the driver restarts it, resumed on its own directory, so
    what it had saved stays and carries on; at the end no target process is left."""
    out = tmp_path / "out"
    proc = subprocess.Popen(cli_cmd() + ["fuzz", "-j", "2", "-o", str(out), "--max-time", "12", "--plain", "--json",
                                         "-i", str(CORPORA / "maze"), "--", str(bins["maze"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO)
    try:
        stats_path = out / "w1" / "fuzzer_stats"
        deadline = time.monotonic() + 30
        while not stats_path.exists() or len(_queue(out / "w1" / "queue")) < 4:
            assert time.monotonic() < deadline and proc.poll() is None, "w1 never got going"
            time.sleep(0.2)
        first_pid = int(read_stats(stats_path)["fuzzer_pid"])
        before = _queue(out / "w1" / "queue")
        os.kill(first_pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["restarts"] == 1 and [w["restarts"] for w in summary["workers"]] == [0, 1]
    assert "w1 died" in stderr and "restarted on its own queue" in stderr
    after = _queue(out / "w1" / "queue")
    assert all(after.get(name) == data for name, data in before.items()), "an entry saved before the kill was lost"
    assert int(read_stats(stats_path)["fuzzer_pid"]) != first_pid
    assert summary["workers"][1]["stop_reason"].startswith("--max-time")
    assert not [p for p in _target_processes(bins["maze"].resolve()) if p != proc.pid]


@pytest.mark.parametrize("args, message", [
    (["-j", "0"], "-j takes a number of workers of at least 1"),
    (["-j", "2", "--cpu", "0"], "--cpu takes auto or none with -j"),
    (["-M", "a", "-S", "b"], "give one of them"),
    (["-S", "../x"], "plain directory name"),
    (["-M", "a", "--name", "b"], "drop --name"),
])
def test_campaign_options_are_checked_before_anything_starts(bins, tmp_path, args, message):
    out = tmp_path / "out"
    line = one_error_line(cli("fuzz", *args, "-i", CORPORA / "maze", "-o", out, "--", bins["maze"]))
    assert message in line
    assert not out.exists()


def test_j2_refuses_an_output_directory_with_an_earlier_run(bins, tmp_path):
    out = tmp_path / "out"
    _entry(out / "w1", 0, b"earlier")
    line = one_error_line(cli("fuzz", "-j", "2", "-i", CORPORA / "maze", "-o", out, "--", bins["maze"]))
    assert "holds an earlier run" in line
    assert sorted(p.name for p in out.iterdir()) == ["w1"], "a refused run made directories"


# ---- Ray ----

def test_the_coordinator_holds_each_find_once_and_counts_the_union_of_edges():
    """The Ray coordinator's bookkeeping, as a plain object: a worker's own entries go
    to the others; an entry it imported comes by name, resolves to the peer's bytes, and
    goes to nobody; edges are the union over the entries; a crash is claimed once."""
    from forkserver.ray_campaign import Coordinator

    c = Coordinator(["main", "w1"], exit_on_crash=True)
    c.report(0, "queue", "id:000000,time:0,execs:0,orig:a", b"seed", np.array([1, 2, 3], np.uint32))
    c.report(0, "queue", "id:000001,src:000000,time:5,execs:9,op:havoc,+cov", b"find", np.array([3, 4], np.uint32))
    c.report(1, "queue", "id:000000,sync:main,src:000001,time:6,execs:3,+cov", None, None)
    c.report(1, "queue", "id:000001,sync:main,src:000099,time:7,execs:4", None, None)  # unknown: dropped
    assert c.edges == 4
    assert c.pull(1, 0) == ([(0, "id:000000,time:0,execs:0,orig:a", b"seed"),
                             (0, "id:000001,src:000000,time:5,execs:9,op:havoc,+cov", b"find")], 3)
    assert c.pull(0, 0) == ([], 3)  # w1's only entry is main's own, imported
    assert [(w, name) for w, _, name, _ in c.files][2:] == [(1, "id:000000,sync:main,src:000001,time:6,execs:3,+cov")]
    assert c.files[2][3] is c.files[1][3]  # the same bytes, held once
    hits = np.array([7, 8], np.uint32)
    assert c.claim_crash(hits, 64, None) is True and c.claim_crash(hits, 64, None) is False
    assert c.update(0, None) is False
    c.report(1, "crashes", "id:000000,sig:06,src:000001,time:9,execs:10,op:havoc", b"boom")
    assert c.update(0, None) is True  # --exit-on-crash: every worker is told to stop


def test_ray_says_how_to_install_it_when_it_is_missing(bins, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from forkserver.cli import main; "
            f"sys.exit(main(['fuzz', '--ray', '-i', {str(CORPORA / 'maze')!r}, '-o', {str(tmp_path / 'o')!r}, "
            f"'--', {str(bins['maze'])!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert one_error_line(proc) == "forkserver: error: --ray needs Ray: pip install 'forkserver[ray]'"
    assert not (tmp_path / "o").exists()


def test_ray_names_a_cluster_it_cannot_reach_at_once(bins, tmp_path):
    """Nothing listens at the address: one error line within seconds (Ray itself would
    retry for minutes), and no output directory."""
    started = time.monotonic()
    proc = cli("fuzz", "--ray", "127.0.0.1:9", "-i", CORPORA / "maze", "-o", tmp_path / "o", "--", bins["maze"],
               timeout=60)
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in one_error_line(proc)
    assert time.monotonic() - started < 30
    assert not (tmp_path / "o").exists()


def test_a_ray_campaign_saves_the_maze_crash_and_a_killed_worker_loses_nothing(bins, tmp_path):
    """Two worker actors on a local Ray cluster. The crash lands in the driver's output
    directory; the actor that saved it first is then killed, started again from what it
    had reported (its queue and the crash), and the crash is neither lost nor saved
    twice."""
    import ray

    from forkserver.inputs import read_inputs
    from forkserver.outdir import OutputDir
    from forkserver.parallel import WorkerSpec
    from forkserver.ray_campaign import RayCampaign

    out = tmp_path / "out"
    names = ["main", "w1"]
    seeds = read_inputs(str(CORPORA / "maze"))
    specs = [WorkerSpec(index=k, name=name, main=k == 0, cpu=None, seed=k, command=[str(bins["maze"])], out=str(out),
                        mode="auto", backend="auto", timeout_ms=1000, hang_timeout_ms=2000, max_time=14,
                        max_runs=None, batch=256, exit_on_crash=False, tokens=[], seeds=seeds, resume=False)
             for k, name in enumerate(names)]
    for name in names:
        OutputDir.open(out, name)

    def crash_files() -> list[str]:
        return sorted(str(p) for n in names for p in (out / n / "crashes").glob("id:*"))

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=128 << 20)
    try:
        events = io.StringIO()
        campaign = RayCampaign(specs, bins["maze"], out, Monitor(events))
        result: list = []
        runner = threading.Thread(target=lambda: result.append(campaign.run()))
        runner.start()
        deadline = time.monotonic() + 60
        while not (saved := [(k, p) for k, n in enumerate(names) for p in (out / n / "crashes").glob("id:*")]):
            assert time.monotonic() < deadline and runner.is_alive(), events.getvalue()
            time.sleep(0.2)
        (killed, crash), = saved
        first_bytes = crash.read_bytes()
        ray.kill(campaign.actors[killed], no_restart=True)
        runner.join(timeout=120)
        assert not runner.is_alive() and result, events.getvalue()
        crashes = crash_files()  # the first campaign's: the resumed one may add its own
        # and the campaign resumed from the driver's directory: the crash is remembered, not saved again
        resumed = RayCampaign([replace(spec, resume=True, max_time=3) for spec in specs], bins["maze"], out,
                              Monitor(io.StringIO())).run()
    finally:
        ray.shutdown()
    summary = result[0]
    assert summary["restarts"] == 1 and summary["workers"][killed]["restarts"] == 1, summary
    assert f"{names[killed]} died; restarted from the" in events.getvalue()
    assert crash.read_bytes() == first_bytes

    # The killed worker's crash is neither lost nor saved again by its restart. Another
    # worker may save a crash of its own, if its run hit edges no saved crash did (AFL's
    # rule): it is counted, and no input is saved twice.
    assert sorted((out / names[killed] / "crashes").glob("id:*")) == [crash], crashes
    assert summary["saved_crashes"] == len(crashes), (summary["crashes"], crashes)
    assert sorted(c["path"] for c in summary["crashes"]) == crashes
    assert len({Path(p).read_bytes() for p in crashes}) == len(crashes)
    assert summary["workers"][killed]["corpus"] >= len(seeds)  # it went on from its reported queue
    assert all(w["stop_reason"].startswith("--max-time") for w in summary["workers"]), summary["workers"]
    for name in names:  # every worker's queue whole in the driver's directory: ids contiguous, as afl-fuzz syncs
        ids = sorted(int(p.name[3:9]) for p in (out / name / "queue").glob("id:*"))
        assert ids == list(range(len(ids))) and len(ids) >= len(seeds), (name, ids)
    assert any(",sync:" in p.name for name in names for p in (out / name / "queue").iterdir())
    after = crash_files()  # the resumed campaign remembers them all, and saves none twice
    assert set(crashes) <= set(after) and resumed["saved_crashes"] == len(after), (resumed["crashes"], after)
    assert crash.read_bytes() == first_bytes and len({Path(p).read_bytes() for p in after}) == len(after)
    assert all(w["stop_reason"].startswith("--max-time") for w in resumed["workers"]), resumed["workers"]
    for name in names:
        ids = sorted(int(p.name[3:9]) for p in (out / name / "queue").glob("id:*"))
        assert ids == list(range(len(ids))), (name, ids)


@pytest.mark.parametrize("how", [["-j", "1"], ["--ray", "-j", "1"]], ids=["j", "ray"])
def test_a_worker_runs_the_comparison_stage_on_the_cmplog_build(bins, tmp_path, how):
    """-c in a campaign: the worker's comparison stage opens magic_gates' four gates
    (havoc alone does not pass the first in minutes), and the crash lands in OUT/main.
    With --ray the driver ships the cmplog build with the target (on one machine a test
    cannot tell a shipped copy from the driver's own path)."""
    from forkserver.build import build

    cmplog = build([HARNESS_DIR / "magic_gates.c"], tmp_path / "magic.cmplog", cmplog=True)
    plain = build([HARNESS_DIR / "magic_gates.c"], tmp_path / "magic")
    out = tmp_path / "out"
    proc = cli("fuzz", *how, "-c", cmplog, "-i", CORPORA / "magic_gates", "-o", out, "-s", "1",
               "--max-time", "120", "--exit-on-crash", "--plain", "--", plain, timeout=300)
    assert proc.returncode == 77, proc.stderr[-3000:]
    (crash,) = [p for p in (out / "main" / "crashes").iterdir() if p.name.startswith("id:")]
    assert crash.read_bytes().startswith(b"\x00\x90\x5a\x4d"), crash.read_bytes()
    assert any(",op:i2s" in p.name for p in (out / "main" / "queue").iterdir())

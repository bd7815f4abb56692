"""afl-fuzz's output layout (forkserver/outdir.py): entry names, contiguous ids across a
resume, refusing an earlier run unless asked to resume, atomic stats, and afl-fuzz's own
tools (afl-whatsup, afl-plot) reading the result."""
import os
import shutil
import subprocess

import pytest

from forkserver.errors import UsageError
from forkserver.outdir import OutputDir, Stats


def test_entry_names_follow_afl_fuzz(tmp_path):
    out = OutputDir.open(tmp_path / "out")
    assert out.add_seed(b"a", "seed one.txt").name == "id:000000,time:0,execs:0,orig:seed_one.txt"
    assert out.add_seed(b"b", "two").name == "id:000001,time:0,execs:0,orig:two"
    assert out.add_queue(b"c", src=1, time_ms=1500, execs=900, op="havoc", new_edges=True).name == \
        "id:000002,src:000001,time:1500,execs:900,op:havoc,+cov"
    assert out.add_queue(b"d", src=2, time_ms=1600, execs=950, op="splice", new_edges=False).name == \
        "id:000003,src:000002,time:1600,execs:950,op:splice"
    assert out.add_crash(b"e", sig=6, src=3, time_ms=1700, execs=990, op="havoc").name == \
        "id:000000,sig:06,src:000003,time:1700,execs:990,op:havoc"
    assert out.add_hang(b"f", src=3, time_ms=1800, execs=999, op="havoc").name == \
        "id:000000,src:000003,time:1800,execs:999,op:havoc"
    for sub in ("queue", "crashes", "hangs", ".synced"):
        assert (tmp_path / "out" / "default" / sub).is_dir()
    assert [p.read_bytes() for _, p in out.queue_entries()] == [b"a", b"b", b"c", b"d"]
    assert not [p for p in (tmp_path / "out" / "default").iterdir() if p.name.startswith(".tmp")]


def test_an_earlier_run_is_refused_unless_resumed(tmp_path):
    out = OutputDir.open(tmp_path / "out")
    out.add_seed(b"a", "s")
    out.add_crash(b"x", sig=11, src=0, time_ms=1, execs=1, op="havoc")
    with pytest.raises(UsageError, match="holds an earlier run: resume it with `-i -` or --resume"):
        OutputDir.open(tmp_path / "out")
    again = OutputDir.open(tmp_path / "out", resume=True)
    assert again.add_queue(b"b", src=0, time_ms=5, execs=5, op="havoc", new_edges=False).name.startswith("id:000001,")
    assert again.add_crash(b"y", sig=6, src=1, time_ms=6, execs=6, op="havoc").name.startswith("id:000001,")
    assert [i for i, _ in again.queue_entries()] == [0, 1], "ids stay contiguous: afl-fuzz's sync relies on it"
    with pytest.raises(UsageError, match="nothing to resume"):
        OutputDir.open(tmp_path / "elsewhere", resume=True)


def test_stats_are_afl_fuzz_key_value_lines(tmp_path):
    out = OutputDir.open(tmp_path / "out")
    out.write_stats(Stats(execs_done=1234, execs_per_sec=567.891, saved_crashes=2, stability=99.5))
    lines = (out.path / "fuzzer_stats").read_text().splitlines()
    stats = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    assert stats["execs_done"] == "1234" and stats["execs_per_sec"] == "567.89"
    assert stats["stability"] == "99.50%" and stats["saved_crashes"] == "2"
    assert all(len(line.split(":", 1)[0]) == 18 for line in lines), "keys padded as afl-fuzz pads them"
    assert not (out.path / ".fuzzer_stats.tmp").exists()


def fill(out: OutputDir, rows: int) -> None:
    stats = Stats(fuzzer_pid=os.getpid(), run_time=rows * 5, corpus_count=4, cur_item=1, saved_crashes=1)
    for k in range(rows):
        stats.run_time, stats.execs_done, stats.execs_per_sec = k * 5, k * 5000, 1000.0
        out.append_plot(stats, map_size=65536)
    out.write_stats(stats)
    out.write_cmdline(["forkserver", "fuzz", "--", "./target", "@@"])


@pytest.mark.skipif(not shutil.which("afl-whatsup"), reason="afl-whatsup is not installed (scripts/setup.sh installs afl++)")
def test_afl_whatsup_reads_it(tmp_path):
    out = OutputDir.open(tmp_path / "sync")
    fill(out, 4)
    proc = subprocess.run(["afl-whatsup", "-s", str(tmp_path / "sync")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "Fuzzers alive : 1" in text and "Crashes saved : 1" in text, text


@pytest.mark.skipif(not (shutil.which("afl-plot") and shutil.which("gnuplot")),
                    reason="afl-plot or gnuplot is not installed (scripts/setup.sh installs afl++ and gnuplot-nox)")
def test_afl_plot_reads_it(tmp_path):
    out = OutputDir.open(tmp_path / "out")
    fill(out, 5)
    proc = subprocess.run(["afl-plot", str(out.path), str(tmp_path / "plots")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "plots" / "index.html").exists() and (tmp_path / "plots" / "exec_speed.png").exists()

"""Tests of `forkserver bench` and `forkserver bench spawn` on tiny settings: JSON rows, CSV, plots, errors.

They check shapes and invariants, never speed: performance goals are benchmarks, not tests.
"""
import csv
import json
import shutil
import subprocess
import sys

import pytest

from conftest import BACKENDS, REPO, cli, one_error_line
from forkserver import bench
from forkserver.errors import UsageError

# the keys DESIGN.md promises for every `bench --json` row, and the extras bench adds
DESIGN_ROW_KEYS = {"mode", "backend", "rss_mb", "execs", "seconds", "execs_per_sec", "restore_us_p50",
                   "dirty_pages_p50"}
EXTRA_ROW_KEYS = {"trials", "execs_per_sec_min", "execs_per_sec_max", "ratio_vs_fork", "batch", "build", "driver"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--seconds", "0.3", "--trials", "1", "--warmup", "0.1"]


def check_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    mpimg = pytest.importorskip("matplotlib.image")
    image = mpimg.imread(str(path))
    assert image.shape[0] > 100 and image.shape[1] > 100


def run_bench(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = cli("bench", *args, timeout=timeout)
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def test_big_heap_sweep_rows_csv_and_plot(tmp_path):
    out_json, out_csv, out_png = tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "b.png"
    run_bench("--modes", "fork,snapshot", "--rss-mb", "0,64", "--no-c-loop", *TINY, "--json", out_json,
              "--csv", out_csv, "--plot", out_png, "--", REPO / "harnesses" / "big_heap.c")
    report = json.loads(out_json.read_text())
    for key in ("date", "kernel", "cpu_pinned", "command_line", "rows"):
        assert key in report
    rows = report["rows"]
    assert len(rows) == 2 * (1 + len(BACKENDS))
    for row in rows:
        assert DESIGN_ROW_KEYS | EXTRA_ROW_KEYS <= row.keys(), row
        assert "error" not in row, row
        assert row["execs"] > 0 and row["seconds"] > 0 and row["execs_per_sec"] > 0
        assert row["trials"] == 1
        assert row["execs_per_sec_min"] <= row["execs_per_sec"] <= row["execs_per_sec_max"]
        assert set(row["outcomes"]) == {"ok"}, row
        # big_heap exits 42 when a restore was not exact: every run must have exited 0
        assert row["exit_codes"] == {"0": row["outcomes"]["ok"]}, row["exit_codes"]
    forks = [r for r in rows if r["mode"] == "fork"]
    snaps = [r for r in rows if r["mode"] == "snapshot"]
    assert {r["rss_mb"] for r in forks} == {0, 64}
    assert all(r["ratio_vs_fork"] == 1.0 and r["restore_us_p50"] is None for r in forks)
    assert {r["backend"] for r in snaps} == set(BACKENDS)
    for r in snaps:
        assert r["restore_us_p50"] > 0 and r["batch"] >= 1
        assert r["dirty_pages_p50"] >= (8 if r["rss_mb"] else 1)  # big_heap writes 8 heap pages
    heap_rows = [r for r in rows if r["rss_mb"] == 64 and r["target_rss_mb"] is not None]
    assert heap_rows and all(r["target_rss_mb"] >= 64 for r in heap_rows)  # the ballast is in place
    with open(out_csv) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    check_png(out_png)


def test_json_to_stdout_with_c_loops_on_the_default_corpus():
    proc = run_bench("--modes", "fork,snapshot", "--backends", BACKENDS[0], *TINY, "--json", "-",
                     "--", REPO / "harnesses" / "maze.c")
    report = json.loads(proc.stdout)  # the table went to stderr
    assert report["inputs"].endswith("corpora/maze")
    labels = {(r["mode"], r["driver"]) for r in report["rows"]}
    assert labels == {("fork", "python"), ("snapshot", "python"), ("fork", "c"), ("snapshot", "c")}
    for r in report["rows"]:
        if (r["mode"], r["driver"]) != ("fork", "c"):  # the C fork loop does not see statuses
            assert set(r["exit_codes"]) == {"0"} and set(r["outcomes"]) == {"ok"}, r
    assert "exec/s" in proc.stderr and "python-driven vs C-driven" in proc.stderr


def test_no_target_means_the_bundled_maze(tmp_path):
    out = tmp_path / "m.json"
    proc = run_bench("--modes", "exec,fork", "--seconds", "0.2", "--trials", "1", "--warmup", "0.05",
                     "--json", out, "--plot", tmp_path / "m.png")
    report = json.loads(out.read_text())
    assert report["target"][0].endswith("harnesses/maze.c")
    assert [r["mode"] for r in report["rows"]] == ["exec", "fork", "fork"]  # plus the C-driven fork row
    assert "exec/s" in proc.stdout
    check_png(tmp_path / "m.png")


def test_exec_mode_time_is_capped(tmp_path):
    out = tmp_path / "e.json"
    run_bench("--modes", "exec", "--seconds", "4", "--trials", "1", "--warmup", "0", "--json", out,
              "--", REPO / "harnesses" / "maze.c")
    (row,) = json.loads(out.read_text())["rows"]
    assert row["seconds"] < bench.EXEC_TRIAL_CAP_S + 0.5


@pytest.mark.skipif(not shutil.which("afl-clang-fast"), reason="afl-clang-fast not installed")
def test_afl_build_is_an_extra_row(tmp_path):
    binary = tmp_path / "maze.afl"
    subprocess.run(["afl-clang-fast", "-O2", f"-I{REPO / 'scripts' / 'afl'}", str(REPO / "harnesses" / "maze.c"),
                    "-o", str(binary)], check=True, capture_output=True)
    out = tmp_path / "a.json"
    run_bench("--modes", "fork", "--no-c-loop", *TINY, "--afl-target", binary, "--json", out,
              "--", REPO / "harnesses" / "maze.c")
    rows = json.loads(out.read_text())["rows"]
    assert [(r["mode"], r["build"]) for r in rows] == [("fork", "forkserver"), ("fork", "afl++")]
    assert rows[1]["execs_per_sec"] > 0 and rows[1]["ratio_vs_fork"] > 0


def test_spawn_rows_and_plot(tmp_path):
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    proc = cli("bench", "spawn", "--rss-mb", "0,8", "--iterations", "10", "--seconds", "0.2",
               "--json", out, "--plot", png, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    ops = bench.SPAWN_PRIMITIVES + [bench.RESTORE_OPERATION]
    assert [(r["rss_mb"], r["operation"]) for r in rows] == [(rss, op) for rss in (0, 8) for op in ops]
    for r in rows:
        assert r["us_per_op"] > 0 and r["iterations"] >= 1 and r["rss_measured_mb"] > 0
    restore_8 = rows[-1]
    assert restore_8["dirty_pages_p50"] >= 8 and restore_8["backend"] in BACKENDS
    parents = {r["rss_mb"]: r["rss_measured_mb"] for r in rows if r["operation"] != bench.RESTORE_OPERATION}
    assert parents[8] >= parents[0] + 7  # the ballast really is resident
    assert "fork+exit+wait us" in proc.stdout
    check_png(png)


@pytest.mark.parametrize("args, words", [
    (["--modes", "fork,bogus"], "bogus"),
    (["--rss-mb", "0,x"], "--rss-mb"),
    (["--backends", "nope"], "nope"),
    (["--trials", "0"], "--trials"),
])
def test_bad_options_give_one_error_line(args, words):
    line = one_error_line(cli("bench", *args, "--", REPO / "harnesses" / "maze.c", timeout=60))
    assert words in line


def test_binary_target_without_inputs_asks_for_them(tmp_path):
    binary = tmp_path / "maze"
    assert cli("build", REPO / "harnesses" / "maze.c", "-o", binary, timeout=120).returncode == 0
    line = one_error_line(cli("bench", "--", binary, timeout=60))
    assert "-i" in line


def test_spawn_takes_no_target():
    assert "no target" in one_error_line(cli("bench", "spawn", "--", "/bin/true", timeout=60))


# ---- pure units ----


def test_parse_lists():
    assert bench.parse_int_list("0,64, 1024", "--rss-mb") == [0, 64, 1024]
    with pytest.raises(UsageError):
        bench.parse_int_list("-1", "--rss-mb")
    assert bench.parse_name_list("fork,snapshot", bench.MODE_ORDER, "--modes") == ["fork", "snapshot"]
    with pytest.raises(UsageError):
        bench.parse_name_list("", bench.MODE_ORDER, "--modes")


def test_default_specs_follow_the_target():
    from forkserver.inspect import BinaryInfo

    ours = BinaryInfo(path="t", forkserver_runtime=True)
    specs = bench.default_specs(ours, None, ["pagemap-scan", "mprotect"], c_loop=True)
    assert [s.label for s in specs] == ["exec", "fork", "snapshot/pagemap-scan", "snapshot/mprotect",
                                        "fork (c loop)", "snapshot/pagemap-scan (c loop)"]
    afl_persistent = BinaryInfo(path="t", afl_instrumented=True, persistent=True)
    assert [s.mode for s in bench.default_specs(afl_persistent, None, ["mprotect"], c_loop=False)] == \
        ["exec", "fork", "persistent"]
    assert bench.afl_spec(afl_persistent) == bench.RowSpec("persistent", build="afl++")


def test_ratio_is_against_the_python_fork_row_of_the_same_rss():
    """Medians over trials of different speeds, on both sides: fork 1000/4000/2000 exec/s
    (median 2000, best 4000, mean 2333), snapshot 5000/30000/10000 (median 10000)."""
    def result(spec, rss, *eps):
        r = bench.RowResult(spec, rss)
        for e in eps:
            r.trials.append(bench.Trial(int(e * 2), 2.0))
        return r

    results = [result(bench.RowSpec("fork"), 0, 1000, 4000, 2000),
               result(bench.RowSpec("snapshot", "mprotect"), 0, 5000, 30000, 10000),
               result(bench.RowSpec("fork", driver="c"), 0, 3000, 9000, 5000),
               result(bench.RowSpec("fork"), 64, 100, 50, 400, 300),
               result(bench.RowSpec("snapshot", "mprotect"), 64, 4000, 8000, 7000)]
    rows = bench.rows_json(results)
    assert [r["execs_per_sec"] for r in rows] == [2000.0, 10000.0, 5000.0, 200.0, 7000.0]
    assert [r["ratio_vs_fork"] for r in rows] == [1.0, 5.0, 2.5, 1.0, 35.0]
    assert (rows[1]["execs_per_sec_min"], rows[1]["execs_per_sec_max"]) == (5000.0, 30000.0)


def test_plots_without_matplotlib_fail_with_a_clear_error(monkeypatch):
    from forkserver import plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match="pip install matplotlib"):
        plot.require_matplotlib()


def test_plot_modes_from_rows(tmp_path):
    from forkserver import plot

    rows = [{"mode": m, "backend": b, "rss_mb": rss, "execs_per_sec": eps, "execs_per_sec_min": eps * 0.9,
             "execs_per_sec_max": eps * 1.1, "target_rss_mb": rss + 1.5, "build": "forkserver", "driver": "python"}
            for rss in (0, 64, 1024) for m, b, eps in (("fork", None, 4000 / (1 + rss / 16)),
                                                        ("snapshot", "pagemap-scan", 40000 / (1 + rss / 512)))]
    plot.plot_modes(rows, tmp_path / "lines.png", title="t")
    plot.plot_modes([r for r in rows if r["rss_mb"] == 0], tmp_path / "bars.png", title="t")
    check_png(tmp_path / "lines.png")
    check_png(tmp_path / "bars.png")

"""The command line: clean one-line errors (never a traceback), the JSON contract of
`run` and `doctor`, `build` and `inspect`."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BACKEND_PARAMS, CORPORA, HARNESS_DIR, REPO, cli, cli_json, one_error_line

RESULT_KEYS = {"input", "outcome", "signal", "exit_code", "edges", "map_hash", "exec_us", "dirty_pages"}
RUN_KEYS = {"mode", "backend", "target", "execs", "seconds", "execs_per_sec", "results"}
OUTCOMES = {"ok", "crash", "timeout", "error"}


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("seed") / "hello"
    f.write_bytes(b"hello\n")
    return f


# ---- errors: one line, non-zero, no traceback ----


def test_error_missing_target(seed_file, tmp_path):
    line = one_error_line(cli("run", "-i", seed_file, "--", tmp_path / "no" / "such-target"))
    assert "target not found" in line and "such-target" in line


def test_error_target_is_a_text_file(seed_file, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    line = one_error_line(cli("run", "-i", seed_file, "--", script))
    assert "not an ELF binary" in line and "script.sh" in line


def test_error_binary_without_runtime(seed_file):
    line = one_error_line(cli("run", "-i", seed_file, "--", "/bin/true"))
    assert "no fork-server runtime" in line and "true" in line


@pytest.mark.parametrize("mode", ["fork", "snapshot"])
def test_error_binary_without_runtime_explicit_mode(seed_file, mode):
    line = one_error_line(cli("run", "--mode", mode, "-i", seed_file, "--", "/bin/true"))
    assert "runtime" in line


def test_error_missing_input(bins, tmp_path):
    line = one_error_line(cli("run", "-i", tmp_path / "no-such-dir" / "seed", "--", bins["maze"]))
    assert "input not found" in line and "no-such-dir" in line


def test_error_unreadable_input(bins):
    # chmod 000 does not stop root (these tests may run as root). /proc/self/mem is a
    # regular file whose read at offset 0 fails with EIO for root and everyone else.
    line = one_error_line(cli("run", "-i", "/proc/self/mem", "--", bins["maze"]))
    assert "cannot read input" in line and "/proc/self/mem" in line


def test_error_unreadable_input_in_directory(bins, tmp_path):
    (tmp_path / "a_good").write_bytes(b"hello")
    (tmp_path / "b_bad").symlink_to("/proc/self/mem")
    line = one_error_line(cli("run", "-i", tmp_path, "--", bins["maze"]))
    assert "cannot read input" in line and "b_bad" in line


def test_error_empty_input_directory(bins, tmp_path):
    line = one_error_line(cli("run", "-i", tmp_path, "--", bins["maze"]))
    assert "no input files" in line


def test_error_no_target(seed_file):
    line = one_error_line(cli("run", "-i", seed_file))
    assert "no target given" in line


@pytest.mark.parametrize("harness,signame,mode", [("init_abort", "SIGABRT", "auto"), ("init_segv", "SIGSEGV", "fork"),
                                                  ("init_abort", "SIGABRT", "snapshot")])
def test_error_target_crashes_during_init(bins, seed_file, harness, signame, mode):
    """A target that dies before FORKSERVER_INIT() never starts its fork server: that is
    a start-up error of the target, not a crash of the input."""
    proc = cli("run", "--mode", mode, "-i", seed_file, "--", bins[harness])
    line = one_error_line(proc)
    assert "during initialisation" in line and signame in line, line
    assert proc.stdout == ""


def test_error_showmap_missing_target(tmp_path, seed_file):
    line = one_error_line(cli("showmap", "-i", seed_file, "--", tmp_path / "gone"))
    assert "target not found" in line


def test_error_usage_problems(bins, seed_file):
    maze = bins["maze"]
    proc = cli("run", "--repeat", "0", "-i", seed_file, "--", maze)
    assert "--repeat" in one_error_line(proc) and proc.returncode == 2
    proc = cli("run", "--mode", "fork", "--verify-restore", "-i", seed_file, "--", maze)
    assert "--verify-restore needs --mode snapshot" in one_error_line(proc) and proc.returncode == 2
    proc = cli("run", "--mode", "snapshot", "--backend", "bogus", "-i", seed_file, "--", maze)
    assert "unknown backend 'bogus'" in one_error_line(proc)
    proc = cli("run", "--mode", "persistent", "-i", seed_file, "--", maze)
    assert "no persistent loop" in one_error_line(proc)


def test_error_unavailable_backend(bins, seed_file):
    from forkserver.doctor import probe_backend

    missing = [b for b in ("pagemap-scan", "soft-dirty") if not probe_backend(b)[0]]
    if not missing:
        pytest.skip("every backend works on this machine")
    for backend in missing:
        line = one_error_line(cli("run", "--mode", "snapshot", "--backend", backend, "-i", seed_file, "--",
                                  bins["maze"]))
        assert f"backend {backend} cannot work here" in line
        assert probe_backend(backend)[1] in line, "the reason doctor gives"


def test_error_build_problems(tmp_path):
    line = one_error_line(cli("build", tmp_path / "missing.c", "-o", tmp_path / "out"))
    assert "no such source file" in line
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    assert "not a C or C++ source" in one_error_line(cli("build", txt, "-o", tmp_path / "out"))
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return this is not C; }\n")
    proc = cli("build", bad, "-o", tmp_path / "out")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("forkserver: error: compiling failed")
    assert not (tmp_path / "out").exists()


def test_error_inspect_non_elf(tmp_path):
    f = tmp_path / "plain"
    f.write_text("hello")
    assert "not an ELF binary" in one_error_line(cli("inspect", f))


# ---- run --json contract ----


def test_run_json_contract_fork(bins):
    out = cli_json("run", "--mode", "fork", "--json", "-i", CORPORA / "crash", "--", bins["crash"], "@@")
    assert set(out) == RUN_KEYS
    assert out["mode"] == "fork" and out["backend"] is None
    assert Path(out["target"]) == bins["crash"].resolve()
    names = sorted(p.name for p in (CORPORA / "crash").iterdir())
    assert out["execs"] == len(out["results"]) == len(names)
    assert [r["input"] for r in out["results"]] == names
    assert isinstance(out["seconds"], float) and out["seconds"] >= 0
    assert out["execs_per_sec"] is None or out["execs_per_sec"] > 0
    for r in out["results"]:
        assert set(r) == RESULT_KEYS, r
        assert r["outcome"] in OUTCOMES
        assert re.fullmatch(r"[0-9a-f]{8}", r["map_hash"])
        assert isinstance(r["edges"], int) and r["edges"] > 0
        assert isinstance(r["exec_us"], (int, float)) and r["exec_us"] >= 0
        assert r["dirty_pages"] is None, "fork mode tracks no pages"
        assert r["outcome"] == "ok" and r["exit_code"] == 0 and r["signal"] is None


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_run_json_contract_snapshot(bins, backend):
    out = cli_json("run", "--mode", "snapshot", "--backend", backend, "--json", "-i", CORPORA / "maze", "--",
                   bins["maze"])
    assert set(out) == RUN_KEYS
    assert out["mode"] == "snapshot" and out["backend"] == backend
    for r in out["results"]:
        assert RESULT_KEYS <= set(r) <= RESULT_KEYS | {"restore_us", "detail"}
        assert r["outcome"] == "ok", r
        assert isinstance(r["dirty_pages"], int) and r["dirty_pages"] >= 0
        assert isinstance(r["restore_us"], (int, float)) and r["restore_us"] >= 0


def test_run_repeat_and_shuffle_are_reproducible(bins):
    def order(*extra):
        out = cli_json("run", "--mode", "fork", "--json", "--repeat", "4", *extra, "-i", CORPORA / "maze", "--",
                       bins["maze"])
        assert out["execs"] == 12
        return [r["input"] for r in out["results"]]

    names = sorted(p.name for p in (CORPORA / "maze").iterdir())
    assert order() == names * 4
    a = order("--shuffle", "--seed", "3")
    assert a == order("--shuffle", "--seed", "3"), "same seed, same order"
    assert sorted(a) == sorted(names * 4)
    others = {tuple(order("--shuffle", "--seed", str(s))) for s in (1, 2)}
    assert others - {tuple(a)}, "different seeds give different orders"


def test_run_human_output(bins):
    proc = cli("run", "--mode", "fork", "-i", CORPORA / "maze", "--", bins["maze"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    names = sorted(p.name for p in (CORPORA / "maze").iterdir())
    assert len(lines) == len(names) + 1
    for name, line in zip(names, lines):
        assert line.split()[0] == name and line.split()[1] == "ok"
    assert re.match(r"3 execs in [\d.]+s: .* exec/s \(fork\)", lines[-1])


def test_run_builds_a_source_target(tmp_path):
    """A C source given as the target is built on the fly (and cached)."""
    env = {"FORKSERVER_CACHE_DIR": str(tmp_path / "cache")}
    out = cli_json("run", "--mode", "fork", "--json", "-i", CORPORA / "maze", "--", HARNESS_DIR / "maze.c", env=env)
    assert [r["outcome"] for r in out["results"]] == ["ok"] * 3
    built = list((tmp_path / "cache").rglob("maze-*"))
    assert built and Path(out["target"]) in [p.resolve() for p in built]
    again = cli_json("run", "--mode", "fork", "--json", "-i", CORPORA / "maze", "--", HARNESS_DIR / "maze.c", env=env)
    assert again["target"] == out["target"], "the second run reuses the cached build"


# ---- doctor ----


def test_doctor_json_keys():
    rep = cli_json("doctor", "--json")
    assert {"kernel", "backends", "compilers", "afl_fuzz"} <= set(rep)
    assert rep["kernel"] == os.uname().release
    assert set(rep["backends"]) == {"pagemap-scan", "soft-dirty", "mprotect", "full-copy"}
    for name, b in rep["backends"].items():
        assert set(b) == {"available", "reason"}
        assert isinstance(b["available"], bool) and isinstance(b["reason"], str) and b["reason"]
    assert rep["backends"]["mprotect"]["available"] and rep["backends"]["full-copy"]["available"]
    assert isinstance(rep["compilers"], dict) and "clang" in rep["compilers"]
    if shutil.which("afl-fuzz"):
        assert rep["afl_fuzz"] and re.match(r"\d", rep["afl_fuzz"])
    else:
        assert rep["afl_fuzz"] is None


def test_doctor_reports_this_machine():
    """This project's machines: kernel without CONFIG_MEM_SOFT_DIRTY, with PAGEMAP_SCAN."""
    rep = cli_json("doctor", "--json")
    sd = rep["backends"]["soft-dirty"]
    if not sd["available"]:
        assert "CONFIG_MEM_SOFT_DIRTY" in sd["reason"]
    assert rep["backends"]["pagemap-scan"]["available"], rep["backends"]["pagemap-scan"]["reason"]
    assert rep["auto_backend"] == "pagemap-scan"


def test_doctor_text_lists_every_backend():
    proc = cli("doctor")
    assert proc.returncode == 0
    for name in ("pagemap-scan", "soft-dirty", "mprotect", "full-copy"):
        assert re.search(rf"^\s+{name}\s+(yes|no)\s+\S", proc.stdout, re.M), name
    assert "auto picks:" in proc.stdout


# ---- build and inspect ----


def test_build_then_run(tmp_path):
    out = tmp_path / "sub" / "maze-bin"
    proc = cli("build", HARNESS_DIR / "maze.c", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert out.read_bytes()[:4] == b"\x7fELF" and os.access(out, os.X_OK)
    info = cli_json("inspect", out, "--json")
    assert info["forkserver_runtime"] and info["afl_instrumented"]
    assert info["coverage"] == "trace-pc-guard"
    assert info["symbols"]["forkserver_init"] and info["symbols"]["__sanitizer_cov_trace_pc_guard"]
    assert not info["deferred"], "maze does not call FORKSERVER_INIT(): the server starts at main"
    fuzz = tmp_path / "fuzz"
    fuzz.write_bytes(b"FUZZ")
    res = cli_json("run", "--mode", "fork", "--json", "-i", fuzz, "--", out)
    assert res["results"][0]["outcome"] == "crash" and res["results"][0]["signal"] == 6


def test_build_with_extra_flags(tmp_path):
    out = tmp_path / "crash-O0"
    proc = cli("build", HARNESS_DIR / "crash.c", "-o", out, "--", "-O0", "-DEXTRA_FLAG=1")
    assert proc.returncode == 0, proc.stderr
    seg = tmp_path / "segv"
    seg.write_bytes(b"SEGV")
    res = cli_json("run", "--mode", "fork", "--json", "-i", seg, "--", out)
    assert res["results"][0]["signal"] == 11


def test_build_keeps_forkserver_init_marker(bins):
    """Harnesses that call FORKSERVER_INIT() must carry the deferred-start marker, so that
    the fork server (and the snapshot) starts there, after their initialisation, and not
    at main's entry (forkserver.h: "Prefer the macro, which also marks the binary as
    deferred")."""
    from forkserver.inspect import scan_markers

    calling_init = ["crash", "hang", "big_heap", "leaky", "thread_after_snapshot", "kernel_write", "init_counter",
                    "counted", "restore_probe"]
    infos = {h: scan_markers(bins[h]) for h in calling_init}
    assert all(i.forkserver_runtime for i in infos.values())
    unmarked = [h for h, i in infos.items() if not i.deferred]
    assert not unmarked, f"these call FORKSERVER_INIT() but their binaries have no ##SIG_AFL_DEFER_FORKSRV##: {unmarked}"


def test_inspect_libfuzzer_harness(bins):
    info = cli_json("inspect", bins["ini_parser"], "--json")
    assert info["libfuzzer"] and info["deferred"] and info["forkserver_runtime"]
    assert info["symbols"]["LLVMFuzzerTestOneInput"]


def test_inspect_text_output(bins):
    proc = cli("inspect", bins["maze"])
    assert proc.returncode == 0
    assert re.search(r"^forkserver_runtime: True$", proc.stdout, re.M)


def test_version_and_console_script():
    """The installed `forkserver` script (from the package's entry point, looked up where
    this interpreter installs scripts, whether or not that directory is on PATH) runs
    the same CLI."""
    import importlib.metadata
    import sys
    import sysconfig

    proc = cli("--version")
    assert proc.returncode == 0 and re.match(r"forkserver \d+\.\d+", proc.stdout)
    points = importlib.metadata.entry_points(group="console_scripts", name="forkserver")
    assert [ep.value for ep in points] == ["forkserver.cli:main"], "the package declares the forkserver script"
    candidates = [Path(sysconfig.get_path("scripts")) / "forkserver", Path(sys.executable).parent / "forkserver"]
    script = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
    assert script, f"no forkserver script in {sorted(set(map(str, candidates)))}: install the package (pip install -e .)"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout == proc.stdout, out.stderr

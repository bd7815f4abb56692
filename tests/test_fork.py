"""Issue 2 acceptance: fork mode (AFL++ fork-server protocol) gives the same outcomes
and coverage as exec mode, times hangs out, and `showmap` agrees with afl-showmap."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import CORPORA, REPO, cli, cli_json, inputs_for, result_key, seeds
from forkserver.executors import ExecExecutor, ForkExecutor
from forkserver.target import Target


def run_file(tmp_path, name: str, data: bytes) -> str:
    f = tmp_path / name
    f.write_bytes(data)
    return str(f)


# ---- outcomes in fork mode ----


@pytest.mark.parametrize("file_input", [False, True], ids=["stdin", "file"])
def test_maze_seeds_ok_and_fuzz_crashes(bins, tmp_path, file_input):
    target = [bins["maze"]] + (["@@"] if file_input else [])
    out = cli_json("run", "--mode", "fork", "--json", "-i", CORPORA / "maze", "--", *target)
    assert out["mode"] == "fork"
    assert len(out["results"]) == len(seeds("maze"))
    for r in out["results"]:
        assert (r["outcome"], r["exit_code"], r["signal"]) == ("ok", 0, None), r
    fuzz = run_file(tmp_path, "fuzz", b"FUZZ")
    res = cli_json("run", "--mode", "fork", "--json", "-i", fuzz, "--", *target)["results"][0]
    assert (res["outcome"], res["signal"], res["exit_code"]) == ("crash", 6, None)


def test_maze_passages_have_distinct_coverage(bins, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for name, data in [("a", b"x"), ("b", b"M"), ("c", b"MAZE!"), ("d", b"MAZE!EXIT"), ("e", b"FUN")]:
        (d / name).write_bytes(data)
    res = {r["input"]: r for r in cli_json("run", "--mode", "fork", "--json", "-i", d, "--", bins["maze"])["results"]}
    assert all(r["outcome"] == "ok" for r in res.values())
    assert len({r["map_hash"] for r in res.values()}) == 5, "each passage takes its own path"


@pytest.mark.parametrize("mode", ["fork", "exec"])
def test_crash_harness_outcome_zoo(bins, tmp_path, mode):
    d = tmp_path / "zoo"
    d.mkdir()
    cases = {"segv": (b"SEGV", ("crash", 11, None)), "abrt": (b"ABRT", ("crash", 6, None)),
             "fpe": (b"FPE", ("crash", 8, None)), "exit3": (b"EXIT3", ("ok", None, 3)),
             "exit300": (b"EXIT300", ("ok", None, 300 & 0xff)), "uexit4": (b"_EXIT4", ("ok", None, 4)),
             "exit": (b"EXIT", ("ok", None, 0)), "plain": (b"hello", ("ok", None, 0))}
    for name, (data, _) in cases.items():
        (d / name).write_bytes(data)
    out = cli_json("run", "--mode", mode, "--json", "-i", d, "--", bins["crash"], "@@")
    got = {r["input"]: (r["outcome"], r["signal"], r["exit_code"]) for r in out["results"]}
    assert got == {name: want for name, (_, want) in cases.items()}


@pytest.mark.parametrize("mode", ["fork", "exec"])
def test_hang_times_out_within_twice_the_timeout(bins, tmp_path, mode):
    timeout_ms = 200
    hang = run_file(tmp_path, "hang", b"HANG")
    proc = cli("run", "--mode", mode, "-t", timeout_ms, "--json", "-i", hang, "--", bins["hang"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    res = json.loads(proc.stdout)["results"][0]
    assert res["outcome"] == "timeout"
    assert res["exec_us"] < 2 * timeout_ms * 1000, f"the hang ran {res['exec_us']} us with -t {timeout_ms}"
    assert res["exec_us"] >= timeout_ms * 1000 * 0.9, "it must not be cut short either"


def test_slow_but_in_time_is_ok(bins, tmp_path):
    slow = run_file(tmp_path, "slow", b"SLOW20")
    res = cli_json("run", "--mode", "fork", "-t", "2000", "--json", "-i", slow, "--", bins["hang"])["results"][0]
    assert (res["outcome"], res["exit_code"]) == ("ok", 0)


def test_fork_server_survives_hangs_and_crashes(bins):
    """A timeout or crash kills only the child: the next inputs still run, with the
    same results as before."""
    t = Target.from_command([str(bins["hang"])])
    try:
        with ForkExecutor(t, 100, cpu=None) as fx:
            before = result_key(fx.run(b"hello"))
            for _ in range(3):
                assert fx.run(b"HANG").outcome.value == "timeout"
                assert result_key(fx.run(b"hello")) == before
    finally:
        t.cleanup()


# ---- exec and fork agree ----


def _modes_agree(binary, inputs: list[bytes], args=()):
    t = Target.from_command([str(binary), *args])
    try:
        with ForkExecutor(t, 2000, cpu=None) as fx:
            fork = [fx.run(d) for d in inputs]
        with ExecExecutor(t, 2000, cpu=None) as ex:
            exe = [ex.run(d) for d in inputs]
    finally:
        t.cleanup()
    for data, f, e in zip(inputs, fork, exe):
        assert (f.outcome, f.signal, f.exit_code) == (e.outcome, e.signal, e.exit_code), data
        assert f.edges == e.edges and f.map_hash == e.map_hash, f"{data!r}: fork {f.edges}/{f.map_hash:08x} " \
                                                                f"exec {e.edges}/{e.map_hash:08x}"
    return fork


@pytest.mark.parametrize("harness,args", [("maze", ()), ("maze", ("@@",)), ("crash", ("@@",)),
                                          ("ini_parser", ()), ("ini_parser", ("@@",))])
def test_exec_and_fork_give_identical_coverage(bins, harness, args):
    inputs = inputs_for(harness)
    fork = _modes_agree(bins[harness], inputs, args)
    assert all(r.edges > 0 for r in fork)


def test_exec_and_fork_agree_through_the_cli(bins, input_dirs):
    for harness in ("maze", "crash", "ini_parser"):
        rows = {}
        for mode in ("exec", "fork"):
            out = cli_json("run", "--mode", mode, "--json", "-i", input_dirs[harness], "--", bins[harness])
            rows[mode] = [(r["input"], r["outcome"], r["signal"], r["exit_code"], r["edges"], r["map_hash"])
                          for r in out["results"]]
        assert rows["exec"] == rows["fork"], harness


@pytest.mark.parametrize("mode", ["fork", "exec"])
def test_leaky_sees_pristine_state_on_every_input(bins, mode):
    """leaky.c: "Exit status = the bitmask: 0 in fork mode and in a snapshot mode that
    restores everything". Each fork-mode child must start from the fork server's state,
    including the offset of the fd leaky opened during its initialisation."""
    out = cli_json("run", "--mode", mode, "--repeat", "3", "--json", "-i", CORPORA / "leaky", "--", bins["leaky"])
    codes = [(r["input"], r["exit_code"]) for r in out["results"]]
    assert all(r["outcome"] == "ok" for r in out["results"])
    assert all(code == 0 for _, code in codes), f"leaked state bits seen in {mode} mode: {codes}"


def test_exec_and_fork_agree_on_leaky(bins):
    _modes_agree(bins["leaky"], seeds("leaky") * 2)


def test_ini_parser_planted_bug(bins, tmp_path):
    d = tmp_path / "ini"
    d.mkdir()
    (d / "boom").write_bytes(b"[crash]\nboom=1\n")
    (d / "boom_spaces").write_bytes(b"[ crash ]\nboom = 1\n")
    (d / "other_section").write_bytes(b"[Crash]\nboom=1\n")
    (d / "syntax_error").write_bytes(b"[crash]\nboom\n")
    out = cli_json("run", "--mode", "fork", "--json", "-i", d, "--", bins["ini_parser"], "@@")
    got = {r["input"]: (r["outcome"], r["signal"]) for r in out["results"]}
    assert got == {"boom": ("crash", 6), "boom_spaces": ("crash", 6), "other_section": ("ok", None),
                   "syntax_error": ("ok", None)}


def test_magic_gates_crash_only_behind_all_four(bins, tmp_path):
    """The target of comparison feedback: each gate passed shows in the exit code, and
    only the input that passes all four crashes, in fork and snapshot mode alike."""
    import struct
    gates = [struct.pack("<I", 0x4D5A9000), struct.pack("<Q", 0xF00DCAFE5EED1E55), b"FZ-GO!", b"snapshot\0"]
    d = tmp_path / "gates"
    d.mkdir()
    for k in range(5):
        (d / f"{k}").write_bytes(b"".join(gates[:k]) + b"x" * (0 if k == 4 else 9))
    (d / "near").write_bytes(b"".join(gates[:3]) + b"snapshoT\0")
    for mode in ("fork", "snapshot"):
        out = cli_json("run", "--mode", mode, "--json", "-i", d, "--", bins["magic_gates"])
        got = {r["input"]: (r["outcome"], r["signal"], r["exit_code"]) for r in out["results"]}
        assert got == {"0": ("ok", None, 0), "1": ("ok", None, 1), "2": ("ok", None, 2), "3": ("ok", None, 3),
                       "4": ("crash", 6, None), "near": ("ok", None, 3)}, mode


def test_fork_mode_is_deterministic(bins):
    t = Target.from_command([str(bins["ini_parser"])])
    try:
        with ForkExecutor(t, 2000, cpu=None) as fx:
            inputs = inputs_for("ini_parser")
            first = [result_key(fx.run(d)) for d in inputs]
            for _ in range(3):
                assert [result_key(fx.run(d)) for d in inputs] == first
    finally:
        t.cleanup()


def test_only_stdin_readers_get_the_input_written_into_stdin(bins):
    """A libFuzzer harness gets its input as an argument: writing every input into
    stdin as well would cost a file write per input for nothing."""
    from forkserver.executors.fork import input_delivery_env
    from forkserver.native import const_str, lib
    stdin_flag, file_flag = const_str(lib.FS_ENV_INPUT_STDIN), const_str(lib.FS_ENV_INPUT_FILE)
    for harness, args, expected in (("ini_parser", [], set()), ("maze", [], {stdin_flag}),
                                    ("maze", ["@@"], {file_flag})):
        t = Target.from_command([str(bins[harness]), *args])
        try:
            assert set(input_delivery_env(t)) == expected, (harness, args)
        finally:
            t.cleanup()


# ---- deferred start ----


@pytest.mark.parametrize("mode", ["fork", "snapshot"])
def test_initialisation_runs_once_per_server(bins, tmp_path, mode):
    """Code before FORKSERVER_INIT() is initialisation: it runs once, in the process that
    becomes the fork server, not once per input."""
    log = tmp_path / "init.log"
    d = tmp_path / "in"
    d.mkdir()
    (d / "seven").write_bytes(b"7")
    out = cli_json("run", "--mode", mode, "--json", "--repeat", "5", "-i", d, "--", bins["init_counter"],
                   env={"INIT_LOG": str(log)})
    assert [(r["outcome"], r["exit_code"]) for r in out["results"]] == [("ok", 7)] * 5
    assert log.read_bytes() == b"I", f"initialisation ran {len(log.read_bytes())} times for 5 inputs"


# ---- showmap against afl-showmap ----

AFL_SHOWMAP = shutil.which("afl-showmap")


def afl_showmap(out, argv, stdin_file=None, extra=()):
    with open(stdin_file, "rb") if stdin_file else open("/dev/null", "rb") as stdin:
        proc = subprocess.run([AFL_SHOWMAP, "-q", *extra, "-o", str(out), "--", *map(str, argv)], stdin=stdin,
                              capture_output=True, timeout=60, env={"AFL_QUIET": "1", "PATH": "/usr/bin:/bin"})
    return proc


def maze_inputs(tmp_path):
    d = tmp_path / "maze_inputs"
    d.mkdir()
    for f in (CORPORA / "maze").iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    (d / "fuzz").write_bytes(b"FUZZ")
    (d / "exit").write_bytes(b"MAZE!EXIT")
    (d / "fun").write_bytes(b"FUN")
    return sorted(d.iterdir())


@pytest.mark.skipif(AFL_SHOWMAP is None, reason="afl-showmap is not installed (apt-get install afl++)")
def test_showmap_matches_afl_showmap_file_input(bins, tmp_path):
    maze = bins["maze"]
    for f in maze_inputs(tmp_path):
        ours, theirs = tmp_path / f"ours-{f.name}", tmp_path / f"afl-{f.name}"
        proc = cli("showmap", "-i", f, "-o", ours, "--", maze, "@@")
        assert proc.returncode == (2 if f.name == "fuzz" else 0), proc.stderr
        assert "Traceback" not in proc.stderr
        afl = afl_showmap(theirs, [maze, f])  # afl-showmap takes @@ only with -i DIR
        assert theirs.exists(), afl.stderr
        assert ours.read_text() == theirs.read_text(), f.name
        assert ours.read_text().strip(), "there is coverage"


@pytest.mark.skipif(AFL_SHOWMAP is None, reason="afl-showmap is not installed (apt-get install afl++)")
def test_showmap_matches_afl_showmap_directory_mode_with_placeholder(bins, tmp_path):
    files = maze_inputs(tmp_path)
    outdir = tmp_path / "afl-out"
    proc = afl_showmap(outdir, [bins["maze"], "@@"], extra=["-i", files[0].parent])
    assert outdir.is_dir(), proc.stderr
    for f in files:
        ours = tmp_path / f"ours-{f.name}"
        cli("showmap", "-i", f, "-o", ours, "--", bins["maze"], "@@")
        assert ours.read_text() == (outdir / f.name).read_text(), f.name


@pytest.mark.skipif(AFL_SHOWMAP is None, reason="afl-showmap is not installed (apt-get install afl++)")
def test_showmap_matches_afl_showmap_stdin(bins, tmp_path):
    maze = bins["maze"]
    for f in maze_inputs(tmp_path):
        ours, theirs = tmp_path / f"ours-{f.name}", tmp_path / f"afl-{f.name}"
        cli("showmap", "-i", f, "-o", ours, "--", maze)
        afl_showmap(theirs, [maze], stdin_file=f)
        assert ours.read_text() == theirs.read_text(), f.name


def test_showmap_stdout_and_summary(bins):
    proc = cli("showmap", "-i", CORPORA / "maze" / "maze_door", "--", bins["maze"])
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines and all(len(l) == 8 and l[6] == ":" and l[:6].isdigit() for l in lines)
    assert proc.stderr.strip() == f"{len(lines)} edges, outcome ok"


def test_afl_fuzz_drives_an_afl_snapshot_build_in_snapshot_mode(tmp_path):
    """`forkserver build --afl-snapshot` marks the binary persistent: afl-fuzz then drives
    it as a persistent target, and the runtime answers with snapshot mode."""
    if not shutil.which("afl-fuzz"):
        pytest.fail("afl-fuzz is missing: scripts/setup.sh installs afl++")
    binary = tmp_path / "ini_parser.snap"
    assert cli("build", "--afl-snapshot", REPO / "harnesses" / "ini_parser.c", "-o", binary).returncode == 0
    env = dict(os.environ, AFL_NO_UI="1", AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1",
               AFL_NO_AFFINITY="1")
    out = tmp_path / "out"
    subprocess.run(["afl-fuzz", "-i", str(CORPORA / "ini_parser"), "-o", str(out), "-V", "3", "--", str(binary)],
                   env=env, capture_output=True, timeout=120, start_new_session=True)
    stats = dict(line.split(" : ", 1) for line in (out / "default" / "fuzzer_stats").read_text().splitlines())
    stats = {k.strip(): v.strip() for k, v in stats.items()}
    assert "persistent" in stats["target_mode"]
    assert int(stats["execs_done"]) > 0
    assert int(stats["corpus_count"]) >= 4  # seeds loaded, calibration passed
    # afl-fuzz saw our coverage: the map bytes the seeds hit (fork mode, our executor;
    # byte 0 is the runtime's "ran" byte, which afl-fuzz counts as well), and then more
    t = Target.from_command([str(binary)])
    try:
        with ForkExecutor(t, 2000, cpu=None) as fx:
            seed_bytes = set()
            for data in seeds("ini_parser"):
                seed_bytes |= set(np.flatnonzero(fx.run(data, keep_map=True).coverage.counts).tolist())
    finally:
        t.cleanup()
    assert float(stats["bitmap_cvg"].rstrip("%")) > 0, stats["bitmap_cvg"]
    assert int(stats["edges_found"]) > len(seed_bytes) > 20, (stats["edges_found"], len(seed_bytes))


def test_showmap_raw_matches_afl_showmap_raw_on_high_counts(bins, tmp_path):
    """ini_parser hits edges many times; raw counts (afl-showmap -r) must agree exactly.
    (Debian's afl-showmap 4.04c leaves out, in its default scale, edges whose count is
    not 1-4 or 8: 41 of 57 lines on app.ini; its raw output has all 57.)"""
    parser = bins["ini_parser"]
    for f in sorted((CORPORA / "ini_parser").iterdir()):
        ours, theirs = tmp_path / f"ours-{f.name}", tmp_path / f"afl-{f.name}"
        assert cli("showmap", "-r", "-i", f, "-o", ours, "--", parser, f).returncode == 0
        afl_showmap(theirs, [parser, f], extra=["-r"])
        assert ours.read_text() == theirs.read_text(), f.name
        assert len(ours.read_text().splitlines()) > 40

"""Runs the zoo harnesses (tests/zoo/*.c) for test_zoo.py, in a child process with its
own session (see conftest.py: a lost runner pid turns the orchestrator's timeout kill
into kill(0, SIGKILL), which must not reach pytest):

    python tests/zoo.py FUNCTION JSON_KWARGS   -> prints one JSON object

Inputs travel as hex strings; a result is [outcome, signal, exit_code, map_hash].

The driver makes itself a child subreaper, so that processes the harnesses start and
orphan end up as its children instead of init's: it reaps them, and it can tell which
are still alive. Every target gets its own ZOO_TAG in its environment; a process that
still carries the tag after its executor closed was left behind (it is reported, then
killed by its pid).

Problems are collected and reported, not raised: results that differ from fork mode,
executor errors (after which a fresh executor takes over), snapshot runners that have
children after an input, processes left behind.
"""
import ctypes
import json
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path

# the forkserver package of the checkout this file is in, whatever is installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forkserver.errors import ForkserverError  # noqa: E402
from forkserver.executors import ForkExecutor, SnapshotExecutor  # noqa: E402
from forkserver.target import Target  # noqa: E402

MAX_REPORTED = 25
PR_SET_CHILD_SUBREAPER = 36


def key(r) -> list:
    return [r.outcome.value, r.signal, r.exit_code, r.map_hash]


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_zombies(keep: set[int] = frozenset()) -> None:
    """Reaps this process's exited children, except the pids in keep (executors wait
    for their own processes)."""
    for pid in children_of(os.getpid()):
        if pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def children_of(pid: int) -> list[int]:
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def _proc_state(pid: int) -> tuple[str, int, str] | None:
    """(state letter, ppid, comm) or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), comm


def tagged_processes(tag: str) -> list[dict]:
    """Live (not zombie) processes whose environment carries ZOO_TAG=tag."""
    needle = f"ZOO_TAG={tag}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle not in env:
            continue
        st = _proc_state(int(name))
        if st and st[0] not in "ZX":
            found.append({"pid": int(name), "state": st[0], "ppid": st[1], "comm": st[2]})
    return found


def left_behind(tag: str, grace_s: float = 3.0) -> list[dict]:
    """Processes of one target that outlived its executor. Waits up to grace_s for
    killed ones to go, then kills (by pid) and reports those still there."""
    deadline = time.monotonic() + grace_s
    while True:
        procs = tagged_processes(tag)
        if not procs or time.monotonic() >= deadline:
            break
        reap_zombies()
        time.sleep(0.02)
    for p in procs:
        try:
            os.kill(p["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    return procs


def make_target(binary: str, tag: str) -> Target:
    return Target.from_command([binary], env={"ZOO_TAG": tag})


class Guarded:
    """An executor that is replaced by a fresh one when it raises; the exceptions are
    reported with the input that caused them."""

    def __init__(self, target: Target, timeout_ms: int, backend: str | None):
        self.target, self.timeout_ms, self.backend = target, timeout_ms, backend
        self.ex = None
        self.errors: list[str] = []
        self.error_count = 0
        self.runners_started = 0
        self.backend_used = None

    def _open(self):
        if self.backend is None:
            self.ex = ForkExecutor(self.target, self.timeout_ms, cpu=0)
        else:
            self.ex = SnapshotExecutor(self.target, self.timeout_ms, cpu=0, backend=self.backend)
        self.ex.start()

    def run(self, data: bytes):
        """The result, or None if the executor raised (twice in a row)."""
        for _ in range(2):
            try:
                if self.ex is None:
                    self._open()
                r = self.ex.run(data)
                self.backend_used = getattr(self.ex, "backend", None)
                return r
            except ForkserverError as exc:
                self.error_count += 1
                if len(self.errors) < MAX_REPORTED:
                    self.errors.append(f"input {data.hex()}: {type(exc).__name__}: {exc}"[:600])
                self.close()
        return None

    @property
    def runner_pid(self) -> int:
        return getattr(self.ex, "runner_pid", 0) if self.ex is not None else 0

    def own_pids(self) -> set[int]:
        session = getattr(self.ex, "session", None)
        return {session.proc.pid} if session is not None else set()

    def close(self):
        if self.ex is not None:
            self.runners_started += getattr(self.ex, "runners_started", 0)
            try:
                self.ex.close()
            except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                self.errors.append(f"close: {type(exc).__name__}: {exc}"[:600])
            self.ex = None


def runner_children(g: Guarded) -> list[int]:
    pid = g.runner_pid
    return children_of(pid) if pid > 0 else []


# ---- the functions test_zoo.py calls ----


def fork_results(bins: dict[str, str], inputs: dict[str, list[bytes]], timeout_ms: int) -> dict:
    """Fork mode: every input of every harness, twice (in order, then again); the two
    results must agree. Returns the reference results and what was left behind."""
    become_subreaper()
    out = {}
    for name, binary in bins.items():
        tag = f"{name}-fork-{uuid.uuid4().hex[:12]}"
        target = make_target(binary, tag)
        g = Guarded(target, timeout_ms, None)
        first, unstable = {}, []
        try:
            for rnd in range(2):
                for d in inputs[name]:
                    r = g.run(d)
                    k = key(r) if r is not None else None
                    detail = r.detail if r is not None else ""
                    if rnd == 0:
                        first[d] = (k, detail)
                    elif k != first[d][0]:
                        unstable.append({"input": d.hex(), "first": first[d][0], "second": k})
        finally:
            g.close()
            target.cleanup()
        out[name] = {"results": {d.hex(): v[0] for d, v in first.items()},
                     "details": {d.hex(): v[1] for d, v in first.items()},
                     "unstable": unstable, "errors": g.errors, "left_behind": left_behind(tag)}
        reap_zombies()
    return out


def snapshot_schedules(bins: dict[str, str], schedules: dict[str, list[bytes]], backend: str, timeout_ms: int,
                       reference: dict[str, dict[str, list]]) -> dict:
    """Per harness, a fresh SnapshotExecutor runs its schedule in order; each result is
    compared with the fork-mode reference for that input. After each input the runner
    must have no children; after the executor closes no process of the target may be
    left."""
    become_subreaper()
    out = {}
    for name, binary in bins.items():
        if name not in schedules:
            continue
        schedule = schedules[name]
        tag = f"{name}-{backend}-{uuid.uuid4().hex[:12]}"
        target = make_target(binary, tag)
        g = Guarded(target, timeout_ms, backend)
        t0 = time.perf_counter()
        got, mismatches, with_children = [], [], []
        try:
            for i, d in enumerate(schedule):
                r = g.run(d)
                k = key(r) if r is not None else None
                got.append(k)
                want = reference[name][d.hex()]
                if k != want and len(mismatches) < MAX_REPORTED:
                    mismatches.append({"index": i, "input": d.hex(), "previous": schedule[i - 1].hex() if i else None,
                                       "snapshot": k, "fork": want, "detail": r.detail if r is not None else
                                       (g.errors[-1] if g.errors else "executor failed")})
                kids = runner_children(g)
                if kids:
                    with_children.append({"index": i, "input": d.hex(), "runner": g.runner_pid,
                                          "children": [dict(pid=p, state=(_proc_state(p) or ("gone",))[0])
                                                       for p in kids]})
        finally:
            g.close()
            target.cleanup()
        out[name] = {"results": got, "mismatches": mismatches, "errors": g.errors,
                     "runner_children": with_children[:MAX_REPORTED], "left_behind": left_behind(tag),
                     "backend": g.backend_used, "runners_started": g.runners_started,
                     "seconds": round(time.perf_counter() - t0, 3)}
        reap_zombies()
    return out


def mixed(bins: dict[str, str], inputs: dict[str, list[bytes]], backend: str, count: int, seed: int,
          timeout_ms: int, reference: dict[str, dict[str, list]], budget_s: float) -> dict:
    """One SnapshotExecutor per harness, all open at once; `count` (harness, input)
    pairs, the harness drawn uniformly and then one of its inputs, in an order fixed by
    `seed`; each result compared with fork mode's for that (harness, input). Stops early
    (and says so) when budget_s runs out."""
    become_subreaper()
    rng = random.Random(seed)
    names = sorted(bins)
    schedule = []
    for _ in range(count):
        name = rng.choice(names)
        schedule.append((name, rng.choice(inputs[name])))
    tags = {name: f"{name}-mixed-{backend}-{uuid.uuid4().hex[:12]}" for name in names}
    targets = {name: make_target(bins[name], tags[name]) for name in names}
    guards = {name: Guarded(targets[name], timeout_ms, backend) for name in names}
    previous: dict[str, bytes | None] = {name: None for name in names}
    mismatches, per_harness, with_children = [], {}, []
    mismatch_count, children_count, done = 0, 0, 0
    t0 = time.perf_counter()
    stopped_early = False
    try:
        for i, (name, d) in enumerate(schedule):
            if time.perf_counter() - t0 > budget_s:
                stopped_early = True
                break
            g = guards[name]
            r = g.run(d)
            k = key(r) if r is not None else None
            want = reference[name][d.hex()]
            if k != want:
                mismatch_count += 1
                per_harness[name] = per_harness.get(name, 0) + 1
                if len(mismatches) < MAX_REPORTED:
                    mismatches.append({"index": i, "harness": name, "input": d.hex(),
                                       "previous": previous[name].hex() if previous[name] is not None else None,
                                       "snapshot": k, "fork": want,
                                       "detail": r.detail if r is not None else
                                       (g.errors[-1] if g.errors else "executor failed")})
            kids = runner_children(g)
            if kids:
                children_count += 1
                if len(with_children) < MAX_REPORTED:
                    with_children.append({"index": i, "harness": name, "input": d.hex(), "children": kids})
            previous[name] = d
            done += 1
            if done % 1000 == 0:
                keep = set().union(*(gg.own_pids() for gg in guards.values()))
                reap_zombies(keep)
    finally:
        for g in guards.values():
            g.close()
        for t in targets.values():
            t.cleanup()
    left = {name: procs for name in names if (procs := left_behind(tags[name], grace_s=1.0))}
    reap_zombies()
    errors = {name: g.errors[:5] for name, g in guards.items() if g.errors}
    return {"execs": done, "planned": count, "stopped_early": stopped_early,
            "seconds": round(time.perf_counter() - t0, 2), "mismatch_count": mismatch_count,
            "mismatches_per_harness": per_harness, "mismatches": mismatches,
            "error_count": sum(g.error_count for g in guards.values()), "errors": errors,
            "runner_children_count": children_count, "runner_children": with_children,
            "left_behind": left, "runners_started": sum(g.runners_started for g in guards.values()),
            "backends": sorted({str(g.backend_used) for g in guards.values()})}


FUNCTIONS = {"fork_results": fork_results, "snapshot_schedules": snapshot_schedules, "mixed": mixed}


def encode_inputs(by_harness: dict[str, list[bytes]]) -> dict[str, list[str]]:
    return {name: [bytes(d).hex() for d in ds] for name, ds in by_harness.items()}


def _decode(kwargs: dict) -> dict:
    out = dict(kwargs)
    for name in ("inputs", "schedules"):
        if name in out:
            out[name] = {h: [bytes.fromhex(x) for x in ds] for h, ds in out[name].items()}
    return out


if __name__ == "__main__":
    result = FUNCTIONS[sys.argv[1]](**_decode(json.loads(sys.argv[2])))
    print(json.dumps(result))

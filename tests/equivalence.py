"""Snapshot-versus-fork comparisons, run by test_snapshot.py in a child process with its
own session (see conftest.py: a lost runner pid turns the orchestrator's timeout kill
into kill(0, SIGKILL), which must not reach pytest).

    python tests/equivalence.py FUNCTION JSON_KWARGS   -> prints one JSON object

Inputs travel as hex strings. Every problem is collected and reported, not raised, so
that one run tells everything it saw: results that differ from fork mode, and runner
start-ups that failed (after which a fresh executor takes over).
"""
import json
import random
import sys
import time

from forkserver.errors import ForkserverError
from forkserver.executors import ForkExecutor, SnapshotExecutor
from forkserver.target import Target

MAX_REPORTED = 20


def key(r) -> list:
    return [r.outcome.value, r.signal, r.exit_code, r.map_hash]


def _fork_reference(target, inputs, timeout_ms) -> dict:
    with ForkExecutor(target, timeout_ms, cpu=0) as fx:
        return {d: key(fx.run(d)) for d in inputs}


class _Snapshot:
    """A SnapshotExecutor that is replaced by a fresh one if it raises."""

    def __init__(self, target, timeout_ms, backend, verify=False):
        self.args = (target, timeout_ms, backend, verify)
        self.failures: list[str] = []
        self.runners_started = 0
        self.ex = None

    def _open(self):
        target, timeout_ms, backend, verify = self.args
        self.ex = SnapshotExecutor(target, timeout_ms, cpu=0, backend=backend, verify=verify)
        self.ex.start()

    def run(self, data: bytes):
        for attempt in range(3):
            if self.ex is None:
                self._open()
            try:
                return self.ex.run(data)
            except ForkserverError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                self.close()
        raise RuntimeError("three executors in a row failed: " + " || ".join(self.failures[-3:]))

    def close(self):
        if self.ex is not None:
            self.runners_started += self.ex.runners_started
            try:
                self.ex.close()
            except Exception:  # noqa: BLE001 - reported through failures already
                pass
            self.ex = None


def replay(binary: str, args: list[str], env: dict, inputs: list[bytes], backend: str, timeout_ms: int,
           reps: int, seed: int, capped: dict[bytes, int] | None = None) -> dict:
    """Fork-mode reference for each input, then in snapshot mode: one pass in order, then
    every input `reps` times (inputs in `capped` only that many times) in an order
    shuffled with `seed`. Each snapshot result must equal the reference."""
    capped = capped or {}
    target = Target.from_command([binary, *args], env=env)
    t0 = time.perf_counter()
    try:
        ref = _fork_reference(target, inputs, timeout_ms)
        schedule = list(inputs) + [d for d in inputs for _ in range(capped.get(d, reps))]
        rest = schedule[len(inputs):]
        random.Random(seed).shuffle(rest)
        schedule[len(inputs):] = rest
        snap = _Snapshot(target, timeout_ms, backend)
        mismatches, count = [], 0
        backend_used = None
        try:
            for i, d in enumerate(schedule):
                r = snap.run(d)
                backend_used = snap.ex.backend if snap.ex else backend_used
                if key(r) != ref[d]:
                    count += 1
                    if len(mismatches) < MAX_REPORTED:
                        prev = schedule[i - 1].hex() if i else None
                        mismatches.append({"index": i, "input": d.hex(), "previous": prev, "snapshot": key(r),
                                           "fork": ref[d], "detail": r.detail})
        finally:
            snap.close()
    finally:
        target.cleanup()
    return {"execs": len(schedule), "mismatch_count": count, "mismatches": mismatches,
            "start_failures": snap.failures[:MAX_REPORTED], "start_failure_count": len(snap.failures),
            "runners_started": snap.runners_started, "backend": backend_used,
            "reference": {d.hex(): v for d, v in ref.items()}, "seconds": round(time.perf_counter() - t0, 2)}


def after_bad(binary: str, args: list[str], backend: str, timeout_ms: int, bad: list[bytes],
              good: list[bytes]) -> dict:
    """For each bad input: run it, then every good input, in one snapshot executor; each
    good result must equal a fresh fork-mode run of it."""
    target = Target.from_command([binary, *args])
    try:
        ref = _fork_reference(target, good + bad, timeout_ms)
        snap = _Snapshot(target, timeout_ms, backend)
        report = []
        try:
            for b in bad:
                rb = snap.run(b)
                goods = [key(snap.run(g)) for g in good]
                report.append({"bad": b.hex(), "bad_result": key(rb), "bad_fork": ref[b],
                               "good": goods, "good_fork": [ref[g] for g in good]})
        finally:
            snap.close()
    finally:
        target.cleanup()
    return {"pairs": report, "start_failures": snap.failures[:MAX_REPORTED]}


FUNCTIONS = {"replay": replay, "after_bad": after_bad}


def _decode(kwargs: dict) -> dict:
    out = dict(kwargs)
    for name in ("inputs", "bad", "good"):
        if name in out:
            out[name] = [bytes.fromhex(x) for x in out[name]]
    if out.get("capped"):
        out["capped"] = {bytes.fromhex(k): v for k, v in out["capped"].items()}
    return out


def encode(kwargs: dict) -> dict:
    out = dict(kwargs)
    for name in ("inputs", "bad", "good"):
        if name in out:
            out[name] = [bytes(x).hex() for x in out[name]]
    if out.get("capped"):
        out["capped"] = {bytes(k).hex(): v for k, v in out["capped"].items()}
    return out


if __name__ == "__main__":
    result = FUNCTIONS[sys.argv[1]](**_decode(json.loads(sys.argv[2])))
    print(json.dumps(result))

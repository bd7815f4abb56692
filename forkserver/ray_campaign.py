"""`forkserver fuzz --ray [ADDRESS]`: the workers as Ray actors, on every node of a cluster.

No filesystem is shared. The driver ships the target binary and the seeds through
Ray's object store; each worker actor fuzzes in a scratch directory on its node, pinned
to a CPU it claims there. Finds travel through one coordinator actor that owns the
campaign's corpus (every entry a worker saved), its coverage (the union of the entries'
edges) and crash uniqueness: workers pull their
peers' entries from it as they would read a sync directory, and report what they save
before they go on. The driver writes every entry, crash and hang into its output
directory in afl-fuzz's layout (OUT/NAME/{queue,crashes,hangs}). A worker that dies is
started again, on any node, from what it had reported."""
import fcntl
import os
import shlex
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import ForkserverError, UsageError
from .monitor import Monitor, Status
from .outdir import write_whole
from .parallel import RemoteMonitor, WorkerSpec, aggregate_status, combine_summaries, run_fuzzer
from .sync import Batch

INSTALL_HINT = "--ray needs Ray: pip install 'forkserver[ray]'"
STATUS_EVERY_S = 1.0          # a worker's figures to the coordinator
DRAIN_EVERY_S = 0.5           # the driver's look at the coordinator
MAX_RESTARTS = 5
STOP_GRACE_S = 15.0
KINDS = ("queue", "crashes", "hangs")


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def connect(ray, address: str | None) -> None:
    """ray.init: the cluster at address, or a local one started here."""
    host, sep, port = (address or "").rpartition(":")
    if sep and host and "/" not in host and port.isdigit():
        import socket

        try:  # Ray itself would retry an address where nothing listens for minutes
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise ForkserverError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it "
                                  "with `ray start --head`, and give the address it prints") from None
    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    except ConnectionError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ForkserverError(f"cannot reach the Ray cluster at {address} ({first}): start it with "
                              "`ray start --head` and give the address it prints, or `--ray auto` on one of its "
                              "nodes (a cluster with token authentication also needs RAY_AUTH_MODE=token)") from None


class Coordinator:
    """The campaign's state, in one actor: what each worker saved (in report order),
    which crashes are saved already, the workers' figures and events, and whether to stop."""

    def __init__(self, names: list[str], exit_on_crash: bool):
        from .shared_crashes import CrashUniqueness

        self.names = names
        self.files: list[tuple[int, str, str, bytes]] = []   # (worker, kind, file name, bytes)
        self.found: dict[tuple[int, int], bytes] = {}         # (worker, queue id) -> its own find
        self.covered = np.zeros(0, dtype=bool)                # map indices some entry hits
        self.edges = 0
        self.crashes = CrashUniqueness()
        self.status: dict[int, Status] = {}
        self.events: list[tuple[int, str]] = []
        self.where: dict[int, dict] = {}
        self.exit_on_crash = exit_on_crash
        self.stopping = False

    def hello(self, index: int, where: dict) -> None:
        self.where[index] = where

    def report(self, index: int, kind: str, name: str, data: bytes | None, edges: np.ndarray | None = None) -> None:
        """A file a worker saved (a queue entry with the map indices it hits). An entry
        it imported from a peer comes without its bytes (name `…,sync:PEER,src:ID,…`):
        they are the peer's, held once."""
        if edges is not None and edges.size:
            if int(edges.max()) >= self.covered.size:
                self.covered = np.concatenate([self.covered, np.zeros(int(edges.max()) + 1 - self.covered.size, bool)])
            self.edges += int(np.count_nonzero(~self.covered[edges]))
            self.covered[edges] = True
        if data is None:
            fields = dict(part.split(":", 1) for part in name.split(",") if ":" in part)
            peer = self.names.index(fields["sync"]) if fields.get("sync") in self.names else -1
            data = self.found.get((peer, int(fields.get("src", -1))))
            if data is None:
                return
        elif kind == "queue":
            self.found[(index, int(name[3:9]))] = data
        self.files.append((index, kind, name, data))
        if kind == "crashes" and self.exit_on_crash:
            self.stopping = True

    def claim_crash(self, hits: np.ndarray, size: int, sanitizer: str | None) -> bool:
        return self.crashes.claim_hits(hits, size, sanitizer)

    def pull(self, index: int, cursor: int) -> tuple[list[tuple[int, str, bytes]], int]:
        """The queue entries other workers found, from position cursor on, and the next
        cursor. What a worker imported from a peer is not sent on: every worker has it."""
        new = [(w, name, data) for w, kind, name, data in self.files[cursor:]
               if kind == "queue" and w != index and ",sync:" not in name]
        return new, len(self.files)

    def update(self, index: int, status: Status) -> bool:
        self.status[index] = status
        return self.stopping

    def event(self, index: int, text: str) -> None:
        self.events.append((index, text))

    def drain(self, cursor: int, event_cursor: int) -> tuple:
        """For the driver: the files and events since its cursors, the figures, the placements."""
        return (self.files[cursor:], len(self.files), self.events[event_cursor:], len(self.events),
                dict(self.status), dict(self.where), self.edges)

    def stop(self) -> None:
        self.stopping = True


class _RaySync:
    """A worker's sync: its peers' entries come from the coordinator, and what it saves
    goes there before the worker carries on (so a worker that dies loses nothing it saved)."""

    def __init__(self, ray, coordinator, index: int, names: list[str]):
        self.ray, self.coordinator, self.index, self.names = ray, coordinator, index, names
        self.cursor = 0

    def pending(self):
        new, cursor = self.ray.get(self.coordinator.pull.remote(self.index, self.cursor))
        by_peer: dict[int, list] = {}
        for peer, name, data in new:
            by_peer.setdefault(peer, []).append((int(name[3:9]), data))
        for peer, entries in by_peer.items():
            yield Batch(self.names[peer], entries, cursor)
        self.cursor = cursor

    def done(self, batch: Batch) -> None:
        pass  # the cursor moves once every peer's batch ran

    def published(self, kind: str, path: Path, data: bytes, edges: np.ndarray | None = None) -> None:
        imported = kind == "queue" and ",sync:" in path.name  # the coordinator has its bytes
        self.ray.get(self.coordinator.report.remote(self.index, kind, path.name, None if imported else data,
                                                    None if imported else edges))


class _RayCrashes:
    """Crash uniqueness asked of the coordinator: the edges of the simplified trace."""

    def __init__(self, ray, coordinator):
        self.ray, self.coordinator = ray, coordinator

    def claim(self, simplified: np.ndarray, sanitizer: str | None) -> bool:
        hits = np.flatnonzero(simplified == 128).astype(np.uint32)
        return self.ray.get(self.coordinator.claim_crash.remote(hits, int(simplified.size), sanitizer))


class _RayMonitor(RemoteMonitor):
    """Through the coordinator, whose answer says whether the campaign is stopping."""

    def __init__(self, ray, coordinator, index: int):
        super().__init__(interval=STATUS_EVERY_S)
        self.ray, self.coordinator, self.index = ray, coordinator, index

    def send(self, status: Status) -> bool:
        return self.ray.get(self.coordinator.update.remote(self.index, status))

    def event(self, text: str) -> None:
        self.coordinator.event.remote(self.index, text)


def claim_cpu() -> tuple[int | None, object]:
    """A CPU of this node no other worker holds (a lock file per CPU, held while the
    worker lives): (cpu, the open lock), or (None, None) when all are taken."""
    from .cpu import allowed_cpus

    locks = Path(tempfile.gettempdir()) / "forkserver-cpus"
    locks.mkdir(exist_ok=True)
    for cpu in allowed_cpus():
        f = open(locks / f"cpu{cpu}", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return cpu, f
        except BlockingIOError:
            f.close()
    return None, None


class Worker:
    """One pinned fuzzer with its own target, in a scratch directory of its node."""

    def __init__(self, spec: WorkerSpec, names: list[str], coordinator, binary: bytes,
                 restore: list[tuple[str, str, bytes]], cmplog_binary: bytes | None = None):
        self.spec, self.names, self.coordinator = spec, names, coordinator
        self.binary, self.restore, self.cmplog_binary = binary, restore, cmplog_binary

    def run(self) -> dict:
        import ray

        from .cpu import pin
        from .rundir import new_workdir
        from .target import Target

        spec = self.spec
        cpu, self._cpu_lock = claim_cpu()
        pin(cpu)
        # in this process's run directory: removed even when the actor is killed (rundir.py)
        scratch = new_workdir(prefix=f"ray-{spec.name}-")
        try:
            binary = scratch / "target"
            binary.write_bytes(self.binary)
            binary.chmod(0o755)
            if self.cmplog_binary is not None:  # -c BINARY: its copy, as the target's
                (scratch / "target.cmplog").write_bytes(self.cmplog_binary)
                (scratch / "target.cmplog").chmod(0o755)
                spec = replace(spec, cmplog=str(scratch / "target.cmplog"))
            out = scratch / "out"
            for kind, name, data in self.restore:
                (out / spec.name / kind).mkdir(parents=True, exist_ok=True)
                (out / spec.name / kind / name).write_bytes(data)
            resume = any(kind == "queue" for kind, _, _ in self.restore)
            ray.get(self.coordinator.hello.remote(spec.index, {
                "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "cpu": cpu}))
            target = Target.from_command([str(binary)] + spec.command[1:])
            target.detect_leaks = spec.detect_leaks
            with target:  # --exit-on-crash is the coordinator's: it stops every worker
                summary = run_fuzzer(replace(spec, exit_on_crash=False), target, out, resume, cpu,
                                     _RayMonitor(ray, self.coordinator, spec.index),
                                     _RaySync(ray, self.coordinator, spec.index, self.names),
                                     _RayCrashes(ray, self.coordinator))
            return dict(summary, cpu=cpu)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class RayCampaign:
    """The driver: starts the coordinator and the workers, writes what they find, shows
    their figures as one, and starts a dead worker again from what it had reported."""

    def __init__(self, specs: list[WorkerSpec], binary: Path, out: Path, monitor: Monitor,
                 address: str | None = None, exit_on_crash: bool = False):
        self.ray = import_ray()
        self.specs, self.binary, self.out, self.monitor = specs, binary, Path(out), monitor
        self.address, self.exit_on_crash = address, exit_on_crash
        self.names = [s.name for s in specs]
        self.actors: list = [None] * len(specs)
        self.refs: list = [None] * len(specs)
        self.summaries: list[dict | None] = [None] * len(specs)
        self.restarts = [0] * len(specs)
        self.status: dict[int, Status] = {}
        self.where: dict[int, dict] = {}
        self.crash_repros: list[tuple[str, str]] = []  # every crash the driver wrote
        self.stop_reason = ""
        self.started = time.time()
        self._cursor = self._event_cursor = 0
        self.edges = 0
        self._started_ray = False

    # ---- the campaign ----

    def run(self) -> dict:
        ray = self.ray
        if not ray.is_initialized():
            connect(ray, self.address)
            self._started_ray = True
        try:
            self._worker_cls = ray.remote(num_cpus=1, max_restarts=0)(Worker)
            coordinator_cls = ray.remote(num_cpus=0)(Coordinator)
            self.coordinator = coordinator_cls.remote(self.names, self.exit_on_crash)
            self.binary_ref = ray.put(self.binary.read_bytes())
            cmplog = self.specs[0].cmplog  # "0": the target is its own cmplog build
            self.cmplog_ref = ray.put(Path(cmplog).read_bytes()) if cmplog not in (None, "0") else None
            for k in range(len(self.specs)):
                self._start(k, self._files_in_out(k) if self.specs[k].resume else [])
            self.monitor.start(self._aggregate())
            try:
                self._loop()
            except KeyboardInterrupt:
                self.stop_reason = "interrupted"
                self._stop_all()
            self._drain()
            summary = self._summary()
            self.monitor.stop(self._aggregate(), summary["stop_reason"], self.crash_repros)
            return summary
        finally:
            # the actors hold the cluster's CPUs until killed: free them for what runs next
            for actor in [a for a in self.actors if a is not None] + [getattr(self, "coordinator", None)]:
                if actor is not None:
                    ray.kill(actor)
            if self._started_ray:
                ray.shutdown()

    def _start(self, k: int, restore: list[tuple[str, str, bytes]]) -> None:
        self.actors[k] = self._worker_cls.remote(self.specs[k], self.names, self.coordinator, self.binary_ref, restore,
                                                 self.cmplog_ref)
        self.refs[k] = self.actors[k].run.remote()

    def _files_in_out(self, k: int) -> list[tuple[str, str, bytes]]:
        """What the driver's directory holds for worker k: a resumed campaign's, and
        everything the worker reported since."""
        base = self.out / self.specs[k].name
        return [(kind, p.name, p.read_bytes()) for kind in KINDS if (base / kind).is_dir()
                for p in sorted((base / kind).iterdir()) if p.name.startswith("id:")]

    def _loop(self) -> None:
        ray = self.ray
        while any(s is None for s in self.summaries):
            pending = [r for r, s in zip(self.refs, self.summaries) if s is None]
            ready, _ = ray.wait(pending, num_returns=1, timeout=DRAIN_EVERY_S)
            self._drain()
            for ref in ready:
                k = self.refs.index(ref)
                try:
                    self.summaries[k] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, ForkserverError):
                        self._stop_all()
                        raise type(cause)(f"{self.names[k]}: {cause}") from None
                    raise
                except ray.exceptions.RayActorError as exc:
                    self._restart(k, exc)
            self.monitor.update(self._aggregate())

    def _restart(self, k: int, exc: Exception) -> None:
        name = self.names[k]
        if self.restarts[k] >= MAX_RESTARTS:
            self._stop_all()
            raise ForkserverError(f"{name} died {self.restarts[k] + 1} times (last: {str(exc).splitlines()[0]}); "
                                  f"{self.out / name} keeps what it found")
        self.restarts[k] += 1
        self._drain()  # its last reports first
        restore = self._files_in_out(k)
        spec = self.specs[k]
        if spec.max_time is not None:  # the campaign's clock does not start again
            spec.max_time = max(spec.max_time - (time.time() - self.started), 0.001)
        self.monitor.event(f"{name} died; restarted from the {len(restore)} entries it had reported")
        self._start(k, restore)

    def _stop_all(self) -> None:
        """Asks the workers to stop (they see it at their next report), then waits."""
        self.ray.get(self.coordinator.stop.remote())
        pending = [r for r, s in zip(self.refs, self.summaries) if s is None]
        done, left = self.ray.wait(pending, num_returns=len(pending), timeout=STOP_GRACE_S)
        for ref in done:
            k = self.refs.index(ref)
            try:
                self.summaries[k] = self.ray.get(ref)
            except Exception:
                self.summaries[k] = {}
        for ref in left:
            k = self.refs.index(ref)
            self.ray.kill(self.actors[k])
            self.summaries[k] = {}

    # ---- what the coordinator holds ----

    def _drain(self) -> None:
        files, self._cursor, events, self._event_cursor, status, where, self.edges = self.ray.get(
            self.coordinator.drain.remote(self._cursor, self._event_cursor))
        for k, kind, name, data in files:
            directory = self.out / self.names[k] / kind
            directory.mkdir(parents=True, exist_ok=True)
            final = write_whole(directory / name, data, self.out / self.names[k])
            if kind == "crashes":
                repro = self._reproduce(self.specs[k], final)
                self.crash_repros.append((repro, ""))
                self.monitor.event(f"{self.names[k]}: new crash: {repro}")
                if self.exit_on_crash and not self.stop_reason:
                    self.stop_reason = f"{self.names[k]}: a crash was found (--exit-on-crash)"
        for k, text in events:
            if not text.startswith("new crash"):  # announced above, with the driver's path
                self.monitor.event(f"{self.names[k]}: {text}")
        self.status.update(status)
        self.where.update(where)

    def _driver_side(self, spec: WorkerSpec, crash: dict) -> dict:
        """A worker's crash, as the driver's output directory holds it."""
        path = self.out / spec.name / "crashes" / Path(crash["path"]).name
        return dict(crash, path=str(path), reproduce=self._reproduce(spec, path))

    @staticmethod
    def _reproduce(spec: WorkerSpec, path: Path) -> str:
        return shlex.join(spec.repro_prefix + ["-i", str(path), "--"] + spec.command)

    def _aggregate(self) -> Status:
        rows = [(name, self.where.get(k, {}).get("cpu"), self.status.get(k)) for k, name in enumerate(self.names)]
        st = aggregate_status(rows, self.started)
        st.edges = max(st.edges, self.edges)  # the union of every worker's entries, as the coordinator counts it
        return st

    def _summary(self) -> dict:
        workers = []
        for k, spec in enumerate(self.specs):
            row = dict(self.summaries[k] or {})
            row["output"] = str(self.out / spec.name)
            row["node"] = self.where.get(k, {}).get("node")
            row["crashes"] = [self._driver_side(spec, c) for c in row.get("crashes", [])]
            cpu = row.pop("cpu", None)
            workers.append((_with_cpu(spec, cpu), row, self.restarts[k]))
        summary = combine_summaries(workers, time.time() - self.started, self.stop_reason)
        summary["output"] = str(self.out)
        summary["ray"] = True
        summary["edges"] = self.edges
        return summary


def _with_cpu(spec: WorkerSpec, cpu: int | None) -> WorkerSpec:
    return replace(spec, cpu=cpu)

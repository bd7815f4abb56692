"""SnapshotExecutor: the runner snapshots itself once after the fork and rolls back the
pages each input dirtied. Inputs travel in batches through a shared control block, so
one wake-up serves many inputs; a crash or timeout costs one new runner."""
import errno

import numpy as np

from ..config import SETTINGS
from ..doctor import BACKEND_IDS
from ..errors import BackendUnavailable, RunnerError, TargetError, TargetStartError
from ..native import check, const_str, ffi, lib
from ..novelty import novelty_from_flags
from .base import (ExecResult, LoopResult, Outcome, add_sanitizer_report, check_input_size, describe_status,
                   loop_result, outcome_from_status)
from .fork import ForkExecutor

BACKENDS = list(BACKEND_IDS)
BACKEND_NAMES = {ident: name for name, ident in BACKEND_IDS.items()}

RUNNER_ERRORS = {
    lib.FS_ERR_BACKEND_UNAVAILABLE: "the snapshot backend is not available here",
    lib.FS_ERR_SNAPSHOT_FAILED: "taking the snapshot failed",
    lib.FS_ERR_THREAD_STARTED: "a thread was started after the snapshot",
    lib.FS_ERR_VERIFY_MISMATCH: "the restore was not exact",
    lib.FS_ERR_RESTORE_FAILED: "the restore failed",
    lib.FS_ERR_INPUT_TOO_LARGE: "the batch is too large",
    lib.FS_ERR_MAPPING_UNRESTORABLE: "the input changed state a restore cannot undo",
}


# result flags that make an input worth the orchestrator's look
NOTABLE_FLAGS = (lib.FS_RESULT_NEW_BUCKET | lib.FS_RESULT_NEW_EDGE | lib.FS_RESULT_THREAD_STARTED
                 | lib.FS_RESULT_VERIFY_FAILED | lib.FS_RESULT_RESTORE_FAILED)


def record_size(data: bytes) -> int:
    """Bytes an input takes in the control block's input area: u32 length, data, 8-aligned."""
    return (4 + len(data) + 7) & ~7


class SnapshotExecutor(ForkExecutor):
    mode = "snapshot"

    def __init__(self, target, timeout_ms: int = 1000, cpu: int | None = None, backend: str = "auto",
                 verify: bool = False, extra_env: dict[str, str] | None = None):
        super().__init__(target, timeout_ms, cpu, extra_env)
        if backend != "auto" and backend not in BACKENDS:
            raise BackendUnavailable(f"unknown backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
        self.requested_backend = backend
        self.backend = backend
        self.verify = verify
        self.runner_pid = 0
        self.snapshot_us: float | None = None
        self.runners_started = 0
        self.runner_retirements = 0
        self.wakeups = 0  # batches sent to a runner

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env[const_str(lib.FS_ENV_MODE)] = "snapshot"
        env[const_str(lib.FS_ENV_BACKEND)] = self.requested_backend
        env[const_str(lib.FS_ENV_CTL_SHM_ID)] = str(self.ctl_shm.id)
        # the runtime rewrites the input file itself, from the control block
        env.pop(const_str(lib.FS_ENV_SHM_FUZZ_ID), None)
        if self.virgin is not None:
            env[const_str(lib.FS_ENV_VIRGIN_SHM_ID)] = str(self.virgin.id)
        if self.verify:
            env[const_str(lib.FS_ENV_VERIFY)] = "1"
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        from ..shm import SharedMemory

        if not self.target.info.forkserver_runtime:
            raise TargetError(f"{self.target.path} is not linked with the forkserver runtime: snapshot mode "
                              "needs it (build with `forkserver build`); AFL++ builds can use --mode fork")
        self.ctl_shm = SharedMemory(ffi.sizeof("struct fs_control"))
        self.ctl = ffi.cast("struct fs_control *", self.ctl_shm.ptr)
        self.ctl.magic = lib.FS_CTL_MAGIC
        self.ctl.version = lib.FS_CTL_VERSION
        super().start()
        self._batch = ffi.new("struct fs_batch_result *")
        self._start_runner()

    def _server_fds(self):
        return self.session.proc.ctl_w, self.session.proc.st_r

    def _read_u32(self, timeout_ms: int) -> int:
        value = ffi.new("unsigned int *")
        rc = lib.fs_host_read_u32(self.session.proc.st_r, timeout_ms, value)
        if rc == -errno.ETIMEDOUT:
            raise TargetStartError(f"the snapshot runner of {self.target.path} did not report ready "
                                   f"within {timeout_ms} ms")
        if rc < 0:
            raise TargetError(f"the fork server of {self.target.path} died: {self.session.proc.stderr_tail()}")
        return value[0]

    def _start_runner(self) -> None:
        ctl_w, _ = self._server_fds()
        self.ctl.runner_pid = 0  # before the command: the runner may write its pid at once
        check(lib.fs_host_write_u32(ctl_w, lib.FS_CMD_NEW_RUNNER), "starting a runner")
        msg = self._read_u32(SETTINGS.init_timeout_ms)
        self.runner_pid = self.ctl.runner_pid
        if msg == lib.FS_MSG_RUNNER_DIED:
            status = self._read_u32(SETTINGS.init_timeout_ms)
            self._raise_runner_start_error(status)
        if msg != lib.FS_MSG_READY:
            raise TargetError(f"unexpected message {msg:#x} from the snapshot runner")
        if not self.runner_pid:
            raise TargetError("the snapshot runner reported ready without its pid")
        self.runners_started += 1
        self.snapshot_us = self.ctl.snapshot_ns / 1000  # time the runner took to take its snapshot
        self.backend = BACKEND_NAMES.get(self.ctl.backend, "?")

    def _error_detail(self) -> str:
        return ffi.string(self.ctl.error_detail).decode(errors="replace")

    def _raise_runner_start_error(self, status: int) -> None:
        code = self.ctl.error_code
        detail = self._error_detail()
        if code == lib.FS_ERR_BACKEND_UNAVAILABLE:
            raise BackendUnavailable(f"backend {self.requested_backend} cannot work here: {detail} "
                                     "(see `forkserver doctor`)")
        if code:
            raise RunnerError(f"snapshot runner failed to start: {RUNNER_ERRORS.get(code, code)}: {detail}")
        raise TargetStartError(f"the snapshot runner of {self.target.path} {describe_status(status)} "
                               f"while taking its snapshot; stderr: {self.session.proc.stderr_tail()}")

    def _fill_batch(self, inputs: list[bytes]) -> None:
        area = ffi.buffer(self.ctl.input_area, lib.FS_INPUT_AREA_SIZE)
        offset = 0
        for i, data in enumerate(inputs):
            check_input_size(data)
            self.ctl.input_offsets[i] = offset
            area[offset:offset + 4] = len(data).to_bytes(4, "little")
            area[offset + 4:offset + 4 + len(data)] = data
            offset += record_size(data)
        self.ctl.batch_count = len(inputs)

    def _result_from_ctl(self, i: int, collect_map: bool, keep_map: bool = False) -> ExecResult:
        r = self.ctl.results[i]
        outcome, sig, code = outcome_from_status(r.status, False)
        res = ExecResult(outcome, sig, code, exec_us=r.exec_ns / 1000, restore_us=r.restore_ns / 1000,
                         dirty_pages=r.dirty_pages)
        if r.flags & lib.FS_RESULT_HASHED:
            res.runner_hash = res.map_hash = r.map_hash
        if self.virgin is not None and outcome is Outcome.OK:
            res.novelty = novelty_from_flags(r.flags)  # the runner classified it, in order
        if collect_map:
            self.map_result(res, keep_map)
        failed = r.flags & (lib.FS_RESULT_THREAD_STARTED | lib.FS_RESULT_VERIFY_FAILED | lib.FS_RESULT_RESTORE_FAILED)
        if failed:
            res.outcome = Outcome.ERROR
            kind = (lib.FS_ERR_THREAD_STARTED if r.flags & lib.FS_RESULT_THREAD_STARTED else
                    lib.FS_ERR_VERIFY_MISMATCH if r.flags & lib.FS_RESULT_VERIFY_FAILED else lib.FS_ERR_RESTORE_FAILED)
            res.detail = self._error_detail() or RUNNER_ERRORS[kind]
            res.thread_started = bool(r.flags & lib.FS_RESULT_THREAD_STARTED)
        return res

    def _fits(self, inputs: list[bytes]) -> int:
        """How many of inputs fit in one batch."""
        total, n = 0, 0
        for data in inputs[: lib.FS_MAX_BATCH]:
            total += record_size(data)
            if total > lib.FS_INPUT_AREA_SIZE:
                break
            n += 1
        return max(n, 1)

    def run(self, data: bytes, keep_map: bool = False) -> ExecResult:
        return self.run_batch([data], collect_maps=True, keep_maps=keep_map)[0]

    def run_batch(self, inputs: list[bytes], collect_maps: bool | None = None,
                  keep_maps: bool = False) -> list[ExecResult]:
        """Runs inputs in order. The shared map is read after single-input batches (or
        as collect_maps says); batched runs carry the runtime's map hash instead. Maps
        are kept in the results only with keep_maps."""
        results: list[ExecResult] = []
        while len(results) < len(inputs):
            pending = inputs[len(results):len(results) + lib.FS_MAX_BATCH]
            batch = pending[: self._fits(pending)]
            single = len(batch) == 1
            results.extend(self._run_one_batch(batch, collect_maps if collect_maps is not None else single, keep_maps))
        return results

    def load_batch(self, batch: list[bytes], hash_maps: bool = True) -> None:
        """Puts a batch in the control block, with a runner ready for it, without running
        it: for drivers that run the control block's batch themselves (the C loops of
        `forkserver bench`). hash_maps: the runtime hashes each input's map."""
        if not self.runner_pid:
            self._start_runner()
        self._fill_batch(batch)
        self._set_checks(hash_maps)

    def _set_checks(self, hash_maps: bool) -> None:
        self.ctl.check_coverage = ((lib.FS_CHECK_HASH if hash_maps else 0)
                                   | (lib.FS_CHECK_NOVELTY if self.virgin is not None else 0))

    def run_loaded_batch(self, collect_map: bool = False, keep_map: bool = False,
                         hash_maps: bool | None = None) -> list[ExecResult]:
        """Runs the batch already in the control block (mutators.Havoc.fill_batch writes
        mutants there), in one wake-up. The results stop at an input that crashed, hung
        or made the runner retire: the rest of that batch did not run. hash_maps: the
        runtime hashes each map (by default when the map is not collected)."""
        count = self.ctl.batch_count
        self._ensure_runner(count)
        self._set_checks(hash_maps=not collect_map if hash_maps is None else hash_maps)
        return self._run_loaded(count, collect_map, keep_map)

    def _ensure_runner(self, count: int) -> None:
        """A runner for the loaded batch of count inputs (a new runner starts with an
        empty batch, so the count is put back)."""
        if not self.runner_pid:
            self._start_runner()
            self.ctl.batch_count = count

    def run_whole_loaded_batch(self) -> tuple[int, list[tuple[int, ExecResult]]]:
        """Runs every input of the loaded batch, for a fuzzer: past a crash, hang or
        retirement, a new runner takes the rest, which is still in the control block.
        Returns how many ran, and (index, result) for the notable ones only: those the
        runner flagged as new coverage, and those that crashed, hung or failed. The
        input a runner died in carries its map (ExecResult.coverage); loaded_input(i)
        gives an input's bytes back until the next batch is loaded."""
        count = self.ctl.batch_count
        offsets = None  # the batch's own offsets, read only when a runner dies mid-batch
        notable: list[tuple[int, ExecResult]] = []
        done = 0
        while done < count:
            self._ensure_runner(count - done)
            self._set_checks(hash_maps=False)
            completed, dying = self._wake(count - done, keep_map=True)
            for i in self._notable(completed):
                notable.append((done + i, self._result_from_ctl(i, False)))
            if dying is None and completed == 0 and not self.runner_pid and not self._batch.never_started:
                dying = ExecResult(Outcome.ERROR, detail=self._error_detail() or "the runner retired")
            if dying is not None:
                notable.append((done + completed, dying))
                completed += 1
            if done + completed < count:  # the rest of the batch goes to the next runner
                if offsets is None:
                    offsets = list(ffi.unpack(self.ctl.input_offsets, count))
                rest = offsets[done + completed:]
                self.ctl.input_offsets[0:len(rest)] = rest
                self.ctl.batch_count = len(rest)
            done += completed
        if offsets is not None:
            self.ctl.input_offsets[0:count] = offsets
            self.ctl.batch_count = count
        return count, notable

    def _notable(self, completed: int) -> list[int]:
        """Indices of the completed results that are not a plain ok run without news."""
        if not completed:
            return []
        words = np.frombuffer(ffi.buffer(self.ctl.results, completed * ffi.sizeof("struct fs_result")),
                              dtype=np.uint32).reshape(completed, -1)
        flagged = (words[:, 1] & NOTABLE_FLAGS) != 0
        signalled = (words[:, 0] & 0x7F) != 0  # WIFSIGNALED (no stopped statuses here)
        return np.flatnonzero(flagged | signalled).tolist()

    def loaded_input(self, i: int) -> bytes:
        """The bytes of input i of the batch in the control block."""
        off = self.ctl.input_offsets[i]
        area = ffi.buffer(self.ctl.input_area + off, 4)
        n = int.from_bytes(area[:], "little")
        return bytes(ffi.buffer(self.ctl.input_area + off + 4, n))

    def run_c_loop(self, batch: list[bytes], repeats: int) -> LoopResult:
        """Runs one batch `repeats` times from C (fs_host_snapshot_loop), one wake-up
        each, without Python per batch. A crash or timeout ends the loop early (its input
        is counted; the next call starts a new runner). last_batch holds the timings of
        the last complete batch."""
        self.load_batch(batch)
        wall_ns = ffi.new("unsigned long long *")
        tally = ffi.new("struct fs_loop_tally *")
        ctl_w, st_r = self._server_fds()
        rc = lib.fs_host_snapshot_loop(ctl_w, st_r, self.ctl, self.runner_pid, self.timeout_ms, repeats, wall_ns,
                                       tally)
        if rc == -errno.ECHILD:
            self.runner_pid = 0
            return loop_result(tally, wall_ns[0])
        self._check_server(rc, "snapshot C loop")
        self.wakeups += repeats
        out = loop_result(tally, wall_ns[0])
        out.last_batch = [self._result_from_ctl(i, False) for i in range(min(self.ctl.completed, len(batch)))]
        return out

    def _run_one_batch(self, batch: list[bytes], collect_map: bool, keep_map: bool = False) -> list[ExecResult]:
        self.load_batch(batch, hash_maps=not collect_map)
        return self._run_loaded(len(batch), collect_map, keep_map)

    def _run_loaded(self, count: int, collect_map: bool, keep_map: bool) -> list[ExecResult]:
        completed, dying = self._wake(count, keep_map)
        results = [self._result_from_ctl(i, collect_map and i == completed - 1, keep_map) for i in range(completed)]
        return results + ([dying] if dying is not None else [])

    def _wake(self, count: int, keep_map: bool) -> tuple[int, ExecResult | None]:
        """Runs the loaded batch of count inputs in one wake-up: (inputs completed, the
        result of the input the runner died in, if it died in one)."""
        ctl_w, st_r = self._server_fds()
        self.wakeups += 1
        self._check_server(lib.fs_host_snapshot_run(ctl_w, st_r, self.ctl, self.runner_pid, self.timeout_ms,
                                                    self._batch), "snapshot runner")
        b = self._batch
        completed = min(self.ctl.completed, count)
        if b.done:
            return completed, None
        # the runner is gone
        self.runner_pid = 0
        if b.never_started and not b.timed_out:
            return 0, None  # killed while idle (from outside): none of the batch ran; a new runner runs it
        if completed >= count:
            return completed, None  # after the last input: killed as it finished, its results stand
        if self.ctl.retired and not b.timed_out:
            self.runner_retirements += 1
            return completed, None
        outcome, sig, code = outcome_from_status(b.status, bool(b.timed_out))
        if self.ctl.error_code:
            outcome = Outcome.ERROR
        # the dying input's own time, from its start stamp in the control block
        started = self.ctl.input_start_ns
        exec_us = (b.end_ns - started) / 1000 if 0 < started <= b.end_ns else b.wall_ns / 1000
        res = add_sanitizer_report(ExecResult(outcome, sig, code, exec_us=exec_us), self.session.stderr)
        if self.ctl.error_code:
            res.detail = f"{RUNNER_ERRORS.get(self.ctl.error_code, '')}: {self._error_detail()}"
        # the runner died in this input (a crash, a timeout, an exec): the map holds its
        # coverage, as it would in fork mode, and no hash was computed for it
        return completed, self.map_result(res, keep_map)

    def close(self) -> None:
        super().close()
        if getattr(self, "ctl_shm", None) is not None:
            self.ctl_shm, shm = None, self.ctl_shm
            shm.close()

"""ForkExecutor: AFL++'s fork-server protocol, one fork() per input (or, for targets
built for AFL++'s persistent mode, one SIGCONT per input)."""
import errno
import os

from .. import mapsize
from ..config import SETTINGS
from ..errors import NativeError, TargetError, TargetStartError
from ..mapsize import MapTooSmall
from ..native import check, const_str, ffi, lib
from ..observers import MapObserver
from ..shm import SharedMemory
from ..target import Target
from .base import (ExecResult, Executor, InputFile, LoopResult, Process, StderrLog, add_sanitizer_report,
                   check_input_size, describe_status, loop_result, outcome_from_status, pin_to_cpu)

# AFL++'s error codes (AFLPP_PROTOCOL.md), each with what to do about it; a map too
# small (FS_ERROR_MAP_SIZE) is not here: the executor gives the target a larger one
SHM_LIMITS = "check the SysV shared memory limits (`sysctl kernel.shmmax kernel.shmall kernel.shmmni`, `ipcs -m`)"
AFL_ERRORS = {
    lib.FS_ERROR_MAP_ADDR: "the target could not map the coverage map at the fixed address it was built for: "
                           "rebuild it without AFL_LLVM_MAP_ADDR (or with afl-clang-fast)",
    lib.FS_ERROR_SHM_OPEN: "the target could not open a shared memory segment: " + SHM_LIMITS,
    lib.FS_ERROR_SHMAT: "the target could not attach the coverage map: " + SHM_LIMITS,
    lib.FS_ERROR_MMAP: "the target could not mmap the coverage map: check its memory limit (ulimit -v)",
    lib.FS_ERROR_OLD_CMPLOG: "the target cannot log comparisons in AFL++'s map (a build without --cmplog, "
                             "or an AFL++ release whose map it does not know): rebuild it",
    lib.FS_ERROR_OLD_CMPLOG_QEMU: "the target's CMPLOG loader (QEMU/FRIDA) is older than its afl-fuzz: update it",
}


def afl_error(path, code: int) -> TargetStartError:
    what = AFL_ERRORS.get(code, f"the target reported AFL++ fork-server error {code}, which we do not know")
    return TargetStartError(f"{path}: {what}")


class ForkServerSession:
    """A running fork server: the process, its pipes, and what its handshake said."""

    def __init__(self, target, env: dict[str, str], input_file: InputFile, fuzz_shm: SharedMemory | None,
                 init_timeout_ms: int, map_capacity: int):
        self.target = target
        self.map_capacity = map_capacity  # the shared map's size, exported as AFL_MAP_SIZE
        self.proc = Process(target.argv(), env, None if target.uses_file_input else input_file.fd,
                            str(target.workdir / "stderr"), fork_server=True)
        self.stderr = StderrLog(self.proc.stderr_path)
        self.map_size = lib.FS_MAP_SIZE_DEFAULT
        self.shm_fuzz = False
        self.autodict: bytes = b""
        try:
            self._handshake(fuzz_shm, init_timeout_ms)
        except Exception:
            self.proc.kill()
            raise
        self.stderr.skip()  # what the initialisation printed is no input's

    def _read(self, timeout_ms: int) -> int:
        value = ffi.new("unsigned int *")
        rc = lib.fs_host_read_u32(self.proc.st_r, timeout_ms, value)
        if rc == -errno.ETIMEDOUT:
            raise TargetStartError(
                f"{self.target.path} did not start its fork server within {timeout_ms} ms "
                "(slow initialisation? raise FORKSERVER_INIT_TIMEOUT_MS)"
            )
        if rc < 0:
            self._died_during_init()
        return value[0]

    def _died_during_init(self):
        status = self.proc.wait(2000)
        tail = self.proc.stderr_tail()
        if status is None:
            raise TargetStartError(f"{self.target.path} closed the fork-server pipe during start-up")
        if os.WIFEXITED(status) and not self.target.info.afl_instrumented:
            raise TargetError(f"{self.target.path} has no fork-server runtime: it ran to completion "
                              "instead of starting a server; build it with `forkserver build` or afl-clang-fast")
        msg = f"{self.target.path} {describe_status(status)} during initialisation, before its fork server started"
        raise TargetStartError(msg + (f"; stderr: {tail}" if tail else ""))

    def _write(self, value: int) -> None:
        check(lib.fs_host_write_u32(self.proc.ctl_w, value), "writing to the fork server")

    def _raise_error(self, code: int) -> None:
        if code == lib.FS_ERROR_MAP_SIZE:
            raise MapTooSmall(None)
        raise afl_error(self.target.path, code)

    def _handshake(self, fuzz_shm: SharedMemory | None, timeout_ms: int) -> None:
        """Both AFL++ handshakes; the first word says which, or is an error. AFL++ 4.20c
        and later send an error (0xeffe0000 | code) in place of any hello, so it is
        checked first, as afl-fuzz does."""
        hello = self._read(timeout_ms)
        if (hello & 0xFFFF0000) == lib.FS_NEW_ERROR:
            self._raise_error(hello & 0xFFFF)
        if hello == lib.FS_NEW_HELLO:
            return self._new_handshake(fuzz_shm, timeout_ms)
        if (hello & lib.FS_OPT_ERROR) == lib.FS_OPT_ERROR:
            self._raise_error((hello & 0x00ffff00) >> 8)
        if (hello & lib.FS_OPT_ENABLED) != lib.FS_OPT_ENABLED:
            # no options: classic AFL's 64 KiB map, unless the target needed a larger map
            # than the default just to start (AFL++ 4.04c's runtime, over 8 MiB): all of it
            if self.map_capacity > mapsize.DEFAULT_CAPACITY:
                self.map_size = self.map_capacity
            return
        # without a size (a map over 8 MiB has no room for one), the map is all it was given
        self.map_size = ((hello & lib.FS_OPT_MAPSIZE_MASK) >> 1) + 1 if hello & lib.FS_OPT_MAPSIZE \
            else self.map_capacity
        wanted = hello & (lib.FS_OPT_SHDMEM_FUZZ | lib.FS_OPT_AUTODICT)
        if not fuzz_shm:
            wanted &= ~lib.FS_OPT_SHDMEM_FUZZ
        if hello & (lib.FS_OPT_SHDMEM_FUZZ | lib.FS_OPT_AUTODICT):
            # the server waits for a reply only when it offered one of these
            self._write(lib.FS_OPT_ENABLED | wanted)
            self.shm_fuzz = bool(wanted & lib.FS_OPT_SHDMEM_FUZZ)
            if wanted & lib.FS_OPT_AUTODICT:
                self.autodict = self._read_bytes(self._read(timeout_ms), timeout_ms)

    def _new_handshake(self, fuzz_shm, timeout_ms: int) -> None:
        self._write(lib.FS_NEW_HELLO ^ 0xFFFFFFFF)
        options = self._read(timeout_ms)
        if (options & 0xFFFF0000) == lib.FS_NEW_ERROR:
            self._raise_error(options & 0xFFFF)
        if options & lib.FS_NEW_OPT_MAPSIZE:
            self.map_size = self._read(timeout_ms)
            if self.map_size > self.map_capacity:
                raise MapTooSmall(self.map_size)
        self.shm_fuzz = bool(options & lib.FS_NEW_OPT_SHDMEM_FUZZ) and fuzz_shm is not None
        if options & lib.FS_NEW_OPT_AUTODICT:
            self.autodict = self._read_bytes(self._read(timeout_ms), timeout_ms)
        if self._read(timeout_ms) != lib.FS_NEW_HELLO:
            raise TargetStartError(f"{self.target.path}: fork-server handshake out of step")

    def _read_bytes(self, n: int, timeout_ms: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = os.read(self.proc.st_r, n - len(out))
            if not chunk:
                self._died_during_init()
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self.proc.kill()


def input_delivery_env(target: Target) -> dict[str, str]:
    """Where the runtime puts each input: the file of @@, or stdin. A libFuzzer harness
    gets its input as an argument: writing it into stdin too would cost a file write at
    every input for nothing."""
    if target.uses_file_input:
        return {const_str(lib.FS_ENV_INPUT_FILE): str(target.input_path)}
    if target.info.libfuzzer:
        return {}
    return {const_str(lib.FS_ENV_INPUT_STDIN): "1"}


class ForkExecutor(Executor):
    """One fork() per input (classic AFL fork server); persistent targets are resumed."""

    mode = "fork"

    def __init__(self, target: Target, timeout_ms: int = 1000, cpu: int | None = None,
                 extra_env: dict[str, str] | None = None):
        super().__init__(target, timeout_ms, cpu)
        self.extra_env = extra_env or {}  # the target's environment, on top of ours

    def _env(self) -> dict[str, str]:
        env = self.target.base_env(persistent=self.mode == "persistent")
        env[const_str(lib.FS_ENV_SHM_ID)] = str(self.map_shm.id)
        env[const_str(lib.FS_ENV_SHM_FUZZ_ID)] = str(self.fuzz_shm.id)
        env[const_str(lib.FS_ENV_MODE)] = "fork"
        env.update(input_delivery_env(self.target))
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.target.require_instrumented()
        pin_to_cpu(self.cpu)
        self.fuzz_shm = SharedMemory(lib.FS_SHM_FUZZ_MAX + lib.FS_SHM_FUZZ_HEADER)
        self.input = InputFile(str(self.target.input_path))
        self._start_session(mapsize.initial_capacity(self.target.base_env()))
        self.map = MapObserver(self.map_shm.array, self.session.map_size)
        self.was_killed = 0
        self._result = ffi.new("struct fs_run_result *")

    def _start_session(self, capacity: int) -> None:
        """Starts the fork server with a map of capacity bytes, and again with a larger
        one while the target needs it (see mapsize)."""
        while True:
            self.map_shm = SharedMemory(capacity)
            if self.virgin is not None:
                self.virgin.ensure_size(capacity)
            env = mapsize.with_map_size(self._env(), capacity)
            try:
                self.session = ForkServerSession(self.target, env, self.input, self.fuzz_shm,
                                                 SETTINGS.init_timeout_ms, capacity)
                return
            except MapTooSmall as exc:
                self.map_shm.close()
                self.map_shm = None
                larger = mapsize.larger_capacity(capacity, exc.needed, lambda: mapsize.dumped_map_size(
                    self.target.argv(), env))
                if larger is None:
                    why = f": {exc.needed} bytes, more than any map we give" if exc.needed else \
                        ", and does not say how large; set AFL_MAP_SIZE to its size (AFL_DEBUG=1 shows __afl_final_loc)"
                    raise TargetStartError(f"{self.target.path} needs a larger coverage map than the {capacity} "
                                           f"bytes it was given{why}") from None
                capacity = larger

    def deliver(self, data: bytes) -> None:
        check_input_size(data)
        if self.session.shm_fuzz:
            buf = self.fuzz_shm.buffer
            buf[0:4] = len(data).to_bytes(4, "little")
            buf[4:4 + len(data)] = data
        else:
            self.input.write(data)

    def run(self, data: bytes, keep_map: bool = False) -> ExecResult:
        self.deliver(data)
        self.map.clear()
        res = self._result
        proc = self.session.proc
        self._check_server(lib.fs_host_fork_run(proc.ctl_w, proc.st_r, self.was_killed, self.timeout_ms, res),
                           "fork server")
        self.was_killed = 1 if res.timed_out else 0
        outcome, sig, code = outcome_from_status(res.status, bool(res.timed_out))
        result = add_sanitizer_report(ExecResult(outcome, sig, code, exec_us=res.exec_ns / 1000), self.session.stderr)
        return self.map_result(result, keep_map)

    def run_c_loop(self, data: bytes, runs: int) -> LoopResult:
        """Runs one input `runs` times from C (fs_host_fork_loop), without Python per run:
        what the protocol costs without the orchestrator's own work."""
        self.deliver(data)
        wall_ns = ffi.new("unsigned long long *")
        tally = ffi.new("struct fs_loop_tally *")
        proc = self.session.proc
        self._check_server(lib.fs_host_fork_loop(proc.ctl_w, proc.st_r, ffi.cast("unsigned char *", self.map_shm.ptr),
                                                 self.map.map_size, self.timeout_ms, runs, wall_ns, tally),
                           "fork C loop")
        return loop_result(tally, wall_ns[0])

    def _check_server(self, rc: int, what: str) -> None:
        """A helper's return code; a failure means the fork server (or runner) is gone."""
        try:
            check(rc, what)
        except NativeError as exc:
            raise TargetError(f"the fork server of {self.target.path} died ({exc}); "
                              f"stderr: {self.session.proc.stderr_tail()}") from exc

    def close(self) -> None:
        """Stops the target and frees what it used; a second call does nothing."""
        for name in ("session", "input", "fuzz_shm", "map_shm"):
            obj = getattr(self, name, None)
            if obj is not None:
                setattr(self, name, None)
                obj.close()

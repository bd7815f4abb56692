"""ExecExecutor: one execve per input, no fork server. The baseline."""
import time

from .. import mapsize
from ..native import const_str, lib
from ..observers import MapObserver
from ..shm import SharedMemory
from .base import (ExecResult, Executor, InputFile, Process, StderrLog, add_sanitizer_report, check_input_size,
                   outcome_from_status, pin_to_cpu)


class ExecExecutor(Executor):
    mode = "exec"

    def start(self) -> None:
        pin_to_cpu(self.cpu)
        self.env = self.target.base_env()
        map_size, capacity = lib.FS_MAP_SIZE_DEFAULT, mapsize.initial_capacity(self.env)
        if self.target.info.forkserver_runtime or self.target.info.afl_instrumented:
            # no handshake here says how large the map is: the fork server's, once
            from .fork import ForkExecutor
            with ForkExecutor(self.target, self.timeout_ms) as sizing:
                map_size, capacity = sizing.session.map_size, sizing.map_shm.size
        self.input = InputFile(str(self.target.input_path))
        self.map_shm = SharedMemory(capacity)
        self.map = MapObserver(self.map_shm.array, map_size)
        self.env = mapsize.with_map_size(self.env, capacity)
        self.env[const_str(lib.FS_ENV_SHM_ID)] = str(self.map_shm.id)
        self.env[const_str(lib.FS_ENV_MODE)] = "exec"  # the target dies with us
        self.stderr = StderrLog(str(self.target.workdir / "stderr"))

    def run(self, data: bytes, keep_map: bool = False) -> ExecResult:
        check_input_size(data)
        self.input.write(data)
        self.map_shm.array[: self.map.map_size] = 0
        t0 = time.perf_counter()
        proc = Process(self.target.argv(), self.env,
                       None if self.target.uses_file_input else self.input.fd,
                       str(self.target.workdir / "stderr"), fork_server=False)
        status = proc.wait(self.timeout_ms)
        timed_out = status is None
        if timed_out:
            proc.kill()
            status = proc.status
        else:
            proc.kill()  # reaps the process group's leftovers
        exec_us = (time.perf_counter() - t0) * 1e6
        outcome, sig, code = outcome_from_status(status, timed_out)
        result = add_sanitizer_report(ExecResult(outcome, sig, code, exec_us=exec_us), self.stderr)
        return self.map_result(result, keep_map)

    def close(self) -> None:
        for name in ("input", "map_shm"):
            obj = getattr(self, name, None)
            if obj is not None:
                setattr(self, name, None)
                obj.close()

"""Executors by mode: exec, fork, snapshot, persistent."""
from ..errors import TargetError, UsageError
from ..novelty import larger
from ..target import Target
from .base import ExecResult, Executor, Outcome
from .exec_mode import ExecExecutor
from .fork import ForkExecutor
from .snapshot import BACKENDS, SnapshotExecutor

MODES = ["exec", "fork", "snapshot", "persistent", "auto"]


def resolve_mode(mode: str, target: Target) -> str:
    """auto: snapshot for our runtime, persistent for AFL++ persistent builds, else fork."""
    if mode == "auto":
        if target.info.forkserver_runtime:
            return "snapshot"
        return "persistent" if target.info.persistent else "fork"
    return mode


class AutoExecutor(Executor):
    """Snapshot mode while it can give exact results; fork mode from the first input that
    starts a thread after the snapshot (that input is run again in fork mode)."""

    mode = "snapshot"

    def __init__(self, snapshot: SnapshotExecutor, fallback: ForkExecutor):
        super().__init__(snapshot.target, snapshot.timeout_ms, snapshot.cpu)
        self.active: Executor = snapshot
        self.fallback = fallback
        self.backend = snapshot.backend
        self.fallback_reason = ""  # why it fell back to fork mode, once it has

    def use_virgin(self, virgin) -> None:
        super().use_virgin(virgin)
        self.active.use_virgin(virgin)
        self.fallback.use_virgin(virgin)

    def stderr_log(self):
        return self.active.stderr_log()

    def set_timeout(self, timeout_ms: int) -> None:
        super().set_timeout(timeout_ms)
        self.active.set_timeout(timeout_ms)
        self.fallback.set_timeout(timeout_ms)

    def start(self) -> None:
        self.active.start()
        self.backend = self.active.backend

    def run(self, data: bytes, keep_map: bool = False) -> ExecResult:
        return self.run_batch([data], keep_maps=keep_map)[0]

    def run_batch(self, inputs: list[bytes], collect_maps: bool | None = None,
                  keep_maps: bool = False) -> list[ExecResult]:
        results = self.active.run_batch(inputs, collect_maps, keep_maps)
        for i, result in enumerate(results):
            if result.thread_started and self.active is not self.fallback:
                self.fall_back(result.detail)
                again = self.fallback.run_batch(inputs[i:], collect_maps, keep_maps)
                # the snapshot runner classified the input it retired on before retiring
                again[0].novelty = larger(result.novelty, again[0].novelty)
                return results[:i] + again
        return results

    @property
    def snapshot(self) -> SnapshotExecutor | None:
        """The snapshot executor while it runs the inputs, None after the fall-back."""
        return self.active if isinstance(self.active, SnapshotExecutor) else None

    def fall_back(self, reason: str = "") -> None:
        """From now on, fork mode (the snapshot runner could not give exact results)."""
        self.fallback_reason = reason
        self.active.close()
        self.active = self.fallback
        self.mode, self.backend = "fork", None
        self.fallback.start()

    def close(self) -> None:
        self.active.close()


def make_executor(mode: str, target: Target, timeout_ms: int = 1000, backend: str = "auto",
                  cpu: int | None = None, verify: bool = False, extra_env: dict | None = None) -> Executor:
    """The executor for a mode name (see MODES).

    Raises:
        UsageError: unknown mode, or a backend given for a mode without snapshots.
        TargetError: the target cannot run in that mode.
    """
    if mode == "auto" and target.info.forkserver_runtime:
        return AutoExecutor(SnapshotExecutor(target, timeout_ms, cpu, backend=backend, verify=verify,
                                             extra_env=extra_env), ForkExecutor(target, timeout_ms, cpu, extra_env))
    mode = resolve_mode(mode, target)
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "snapshot":
        return SnapshotExecutor(target, timeout_ms, cpu, backend=backend, verify=verify, extra_env=extra_env)
    if verify:
        raise UsageError("--verify-restore needs --mode snapshot")
    if mode == "persistent" and not target.info.persistent:
        raise TargetError(f"{target.path} has no persistent loop (no ##SIG_AFL_PERSISTENT## marker): "
                          "build it with __AFL_LOOP, or use --mode fork or snapshot")
    if mode == "exec":
        return ExecExecutor(target, timeout_ms, cpu)
    ex = ForkExecutor(target, timeout_ms, cpu, extra_env)
    ex.mode = mode
    return ex


__all__ = ["BACKENDS", "MODES", "ExecExecutor", "ExecResult", "Executor", "ForkExecutor", "Outcome",
           "SnapshotExecutor", "make_executor", "resolve_mode"]

"""Objectives: the crashes and hangs a campaign saves.

- Crashes are de-duplicated by the coverage of the crashing run (feedbacks.ObjectiveFeedback:
  AFL's simplified trace, plus a sanitizer summary not seen before).
- A timeout is a hang only when a second run, with a longer timeout, times out too
  (AFL's hang_tmout): slow inputs on a busy machine are not hangs.
- Instances that share a sync directory share their crashes' uniqueness too
  (shared_crashes.py): a crash one of them saved is not saved by another."""
from .executors import ExecResult, Executor, Outcome
from .feedbacks import ObjectiveFeedback, simplify


def hang_timeout_for(timeout_ms: int) -> int:
    """The default confirmation timeout: twice the run timeout, at least a second."""
    return max(2 * timeout_ms, 1000)


class Objectives:
    def __init__(self, hang_timeout_ms: int, shared=None):
        self.hang_timeout_ms = hang_timeout_ms
        self.shared = shared  # SharedCrashes (or an object with its claim()), or None
        self.crashes = ObjectiveFeedback(Outcome.CRASH)
        self.hangs = ObjectiveFeedback(Outcome.TIMEOUT)
        self.total_crashes = 0   # every crashing run, saved or not
        self.total_timeouts = 0  # every run that timed out, confirmed or not

    def new_crash(self, result: ExecResult) -> bool:
        """Counts a crash; True when it is one to save (its map is in the result)."""
        self.total_crashes += 1
        if not self.crashes.is_interesting(result):
            return False
        return self.shared is None or self.shared.claim(simplify(result.coverage.counts), result.sanitizer or None)

    def remember_crash(self, result: ExecResult) -> None:
        """A crash saved before (a resumed run's): not new again, here or to the peers."""
        self.crashes.is_interesting(result)
        if self.shared is not None:
            self.shared.claim(simplify(result.coverage.counts), result.sanitizer or None)

    def confirm_hang(self, executor: Executor, data: bytes) -> ExecResult:
        """Runs a timed-out input again with the hang timeout; the second result says
        what it is (TIMEOUT: a hang; CRASH: a crash; OK: it was only slow)."""
        self.total_timeouts += 1
        normal = executor.timeout_ms
        executor.set_timeout(self.hang_timeout_ms)
        try:
            return executor.run(data, keep_map=True)
        finally:
            executor.set_timeout(normal)

    def new_hang(self, confirmed: ExecResult) -> bool:
        return self.hangs.is_interesting(confirmed)

    def close(self) -> None:
        self.crashes.close()
        self.hangs.close()

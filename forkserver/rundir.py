"""The one temporary directory a forkserver process works in: $TMPDIR/forkserver-<pid>.
Every target's input file and stderr live below it. It is removed when the process
exits, by a small janitor process when it is killed (even by SIGKILL), and at the next
start-up of any forkserver process if both of those were killed too."""
import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PREFIX = "forkserver-"
_run_dir: Path | None = None
_janitor = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(base: Path) -> None:
    """Removes run directories whose owner process is gone."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(PREFIX):]
        if entry.name.startswith(PREFIX) and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _start_janitor(path: Path) -> None:
    """A shell in its own session that waits for this process to go (its stdin pipe
    closes with the last of our fds), then removes the directory."""
    global _janitor
    _janitor = subprocess.Popen(["/bin/sh", "-c", 'read _ignored; rm -rf -- "$1"', "forkserver-janitor", str(path)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)


def _remove() -> None:
    global _run_dir
    if _run_dir is not None and _run_dir.name == f"{PREFIX}{os.getpid()}":
        shutil.rmtree(_run_dir, ignore_errors=True)
        _run_dir = None
    if _janitor is not None and _janitor.stdin:
        try:
            _janitor.stdin.close()
            _janitor.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


def run_dir() -> Path:
    """This process's run directory, created on first use (a forked child gets its own)."""
    global _run_dir, _janitor
    if _run_dir is not None and _run_dir.name == f"{PREFIX}{os.getpid()}":
        return _run_dir
    base = Path(tempfile.gettempdir())
    sweep_stale(base)
    path = base / f"{PREFIX}{os.getpid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    _run_dir, _janitor = path, None
    _start_janitor(path)
    atexit.register(_remove)
    return path


def new_workdir(prefix: str = "target-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=run_dir()))

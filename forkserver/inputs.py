"""Reading inputs from files and directories, with errors that name the file."""
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import InputError


def _kind(mode: int) -> str:
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def read_inputs(path: str | Path, on_skip: Callable[[str], None] | None = None) -> list[tuple[str, bytes]]:
    """(name, bytes) for a file, or for every regular file of a directory, sorted by name.

    Inside a directory, hidden files are left out, and so is anything that is not a
    regular file (a FIFO would block for ever): on_skip hears of each of those.

    Raises:
        InputError: missing, unreadable, not a regular file, or an empty directory.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"input not found: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read input {p}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        files = []
        try:
            entries = sorted(p.iterdir())
        except OSError as exc:
            raise InputError(f"cannot list input directory {p}: {exc.strerror}") from None
        for f in entries:
            if f.name.startswith("."):
                continue
            try:
                fmode = f.stat().st_mode
            except OSError:
                fmode = 0
            if stat.S_ISREG(fmode):
                files.append(f)
            elif on_skip and not stat.S_ISDIR(fmode):
                on_skip(f"skipping {f}: {_kind(fmode)}")
    elif stat.S_ISREG(mode):
        files = [p]
    else:
        raise InputError(f"input {p} is {_kind(mode)}; inputs are read from regular files (copy it into one)")
    if not files:
        raise InputError(f"no input files in {p}")
    out = []
    for f in files:
        try:
            out.append((f.name, f.read_bytes()))
        except OSError as exc:
            raise InputError(f"cannot read input {f}: {exc.strerror}") from exc
    return out

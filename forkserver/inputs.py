"""Reading inputs from files and directories, with errors that name the file."""
from pathlib import Path

from .errors import InputError


def read_inputs(path: str | Path) -> list[tuple[str, bytes]]:
    """(name, bytes) for a file, or for every regular file of a directory, sorted by name.

    Raises:
        InputError: missing, unreadable, or an empty directory.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")) if p.is_dir() else [p]
    if not files:
        raise InputError(f"no input files in {p}")
    out = []
    for f in files:
        try:
            out.append((f.name, f.read_bytes()))
        except OSError as exc:
            raise InputError(f"cannot read input {f}: {exc.strerror}") from exc
    return out

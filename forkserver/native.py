"""The compiled C helpers, their protocol constants, and the one place where a C
failure (-errno) becomes a Python exception."""
import hashlib
import os

from .errors import ForkserverError, NativeError

try:
    from ._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ForkserverError(
        f"the compiled helpers are missing ({exc}); reinstall with `pip install .`"
    ) from exc


def check(rc: int, what: str) -> int:
    """Returns rc when it is not negative, else raises NativeError for -rc."""
    if rc < 0:
        raise NativeError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def const_str(value) -> str:
    """A string constant from the protocol header."""
    return ffi.string(value).decode()


def check_protocol(protocol_header: "os.PathLike[str]") -> None:
    """Raises when the runtime sources on disk speak another protocol than the helpers."""
    digest = hashlib.sha256(open(protocol_header, "rb").read()).hexdigest()[:16]
    if digest != const_str(lib.FS_PROTOCOL_DIGEST):
        raise ForkserverError(
            f"{protocol_header} changed since the helpers were compiled; reinstall with `pip install .`"
        )

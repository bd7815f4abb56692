"""The exceptions forkserver raises; the CLI turns each into one line and an exit code."""


class ForkserverError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    exit_code = 1


class UsageError(ForkserverError):
    """Bad command-line arguments or options."""

    exit_code = 2


class ConfigError(UsageError):
    """An environment variable has a value that cannot work."""


class TargetError(ForkserverError):
    """The target is missing, not an ELF binary, or not built for a fork server."""


class TargetStartError(TargetError):
    """The target died or stalled before its fork server came up."""


class BackendUnavailable(ForkserverError):
    """The requested snapshot backend cannot work on this machine."""


class RunnerError(ForkserverError):
    """The snapshot runner reported a failure it cannot recover from."""


class BuildError(ForkserverError):
    """Compiling a harness failed."""


class InputError(ForkserverError):
    """An input file or directory cannot be read."""


class OutputDirError(ForkserverError):
    """The output directory exists or cannot be created."""


class NativeError(ForkserverError):
    """A host-side C helper failed with an errno."""

    def __init__(self, errno: int, message: str):
        super().__init__(message)
        self.errno = errno

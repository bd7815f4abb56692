"""A target command line: the binary, its arguments (with @@), how it gets its input,
and the environment a fork server needs."""
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .build import SOURCE_SUFFIXES, build_cached
from .errors import TargetError
from .inspect import BinaryInfo, check_target, scan_markers
from .native import const_str, lib
from .rundir import new_workdir
from .sanitizers import check_runnable, sanitizer_env

INPUT_PLACEHOLDER = "@@"


@dataclass
class Target:
    """What to run. Use Target.from_command() to resolve sources and check the binary."""

    path: Path
    args: list[str]
    info: BinaryInfo
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=new_workdir)
    detect_leaks: bool = False  # LeakSanitizer's check after each input: leaks are crashes

    @classmethod
    def from_command(cls, command: list[str], env: dict[str, str] | None = None) -> "Target":
        """Resolves `TARGET [ARGS...]`; a C/C++ source is built (and cached) first.

        Raises:
            TargetError: missing, non-ELF, or not instrumented for a fork server.
        """
        if not command:
            raise TargetError("no target given: put it after `--`")
        first = Path(command[0])
        if first.suffix in SOURCE_SUFFIXES:
            path = build_cached(first)
        else:
            if not first.exists() and "/" not in command[0] and shutil.which(command[0]):
                first = Path(shutil.which(command[0]))
            path = check_target(first)
        info = scan_markers(path)
        check_runnable(info.sanitizers, str(path))
        return cls(path=path.resolve(), args=list(command[1:]), info=info, env=dict(env or {}))

    def require_instrumented(self) -> None:
        if not (self.info.forkserver_runtime or self.info.afl_instrumented):
            raise TargetError(
                f"{self.path} has no fork-server runtime (no {const_str(lib.FS_SIG_SHM)} marker): "
                "build it with `forkserver build` or afl-clang-fast"
            )

    @property
    def uses_file_input(self) -> bool:
        return INPUT_PLACEHOLDER in self.args

    @property
    def input_path(self) -> Path:
        return self.workdir / ".cur_input"

    def argv(self) -> list[str]:
        path = str(self.input_path)
        return [str(self.path)] + [a.replace(INPUT_PLACEHOLDER, path) for a in self.args]

    def base_env(self, persistent: bool = False) -> dict[str, str]:
        """The environment every mode shares: ours, the user's (sanitizer options over our
        defaults, see forkserver.sanitizers), and the markers' exports.
        AFL++'s persistent variable goes only to a persistent-mode run: with it, a
        persistent build loops in one process, whatever the mode is called."""
        env = dict(os.environ)
        env.update(self.env)
        for name in (lib.FS_ENV_SHM_ID, lib.FS_ENV_SHM_FUZZ_ID, lib.FS_ENV_CTL_SHM_ID, lib.FS_ENV_MODE,
                     lib.FS_ENV_INPUT_FILE, lib.FS_ENV_INPUT_STDIN, lib.FS_ENV_PERSISTENT, lib.FS_ENV_DEFER,
                     lib.FS_ENV_CMPLOG_SHM_ID, lib.FS_ENV_VIRGIN_SHM_ID):
            env.pop(const_str(name), None)
        env.pop(const_str(lib.FS_ENV_DETECT_LEAKS), None)
        env.update(sanitizer_env(env, self.detect_leaks))
        if self.detect_leaks:
            env[const_str(lib.FS_ENV_DETECT_LEAKS)] = "1"
        if self.info.deferred:
            env[const_str(lib.FS_ENV_DEFER)] = "1"
        if persistent and self.info.persistent:
            env[const_str(lib.FS_ENV_PERSISTENT)] = "1"
        return env

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

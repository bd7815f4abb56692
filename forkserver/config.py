"""Settings from the environment, read and checked once, in one place (the README lists
them). A bad value never raises at import: it is kept as an error that the CLI reports
at start-up (check_settings) and that anything using the settings raises."""
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_INIT_TIMEOUT_MS = 10000


def flag(value: str | None) -> bool:
    """How every boolean variable reads, in Python and in the runtime: set, and not "0"."""
    return value not in (None, "", "0")


def _positive_ms(name: str, value: str | None, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        ms = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number of milliseconds") from None
    if ms < 1:
        raise ConfigError(f"{name}={value!r} must be at least 1 (milliseconds)")
    return ms


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    compiler: str | None
    no_affinity: bool
    debug: bool
    init_timeout_ms: int

    @classmethod
    def from_environ(cls, env=os.environ) -> "Settings":
        """Raises:
            ConfigError: a variable has a value that cannot work.
        """
        cache = env.get("FORKSERVER_CACHE_DIR") or str(
            Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "forkserver")
        compiler = env.get("FORKSERVER_CC") or None
        if compiler is not None and Path(compiler).name not in ("clang", "gcc") and \
                not Path(compiler).name.startswith(("clang-", "gcc-")):
            if Path(compiler).name.startswith("afl-"):
                raise ConfigError(
                    f"FORKSERVER_CC={compiler!r}: AFL++'s compilers link AFL++'s runtime, whose coverage callbacks "
                    "and fork server would clash with ours; use clang or gcc here, or build with "
                    f"{Path(compiler).name} alone: forkserver drives AFL++ builds in fork and persistent mode")
            raise ConfigError(f"FORKSERVER_CC={compiler!r}: use clang or gcc (a name or a path, e.g. clang-14)")
        return cls(cache_dir=Path(cache), compiler=compiler, no_affinity=flag(env.get("FORKSERVER_NO_AFFINITY")),
                   debug=flag(env.get("FORKSERVER_DEBUG")),
                   init_timeout_ms=_positive_ms("FORKSERVER_INIT_TIMEOUT_MS", env.get("FORKSERVER_INIT_TIMEOUT_MS"),
                                                DEFAULT_INIT_TIMEOUT_MS))


def _load() -> tuple[Settings, ConfigError | None]:
    try:
        return Settings.from_environ(), None
    except ConfigError as exc:
        defaults = Settings.from_environ({k: v for k, v in os.environ.items() if not k.startswith("FORKSERVER_")})
        return defaults, exc


SETTINGS, _ERROR = _load()


def check_settings() -> Settings:
    """Raises the ConfigError of a bad environment variable, else returns the settings."""
    if _ERROR is not None:
        raise _ERROR
    return SETTINGS


def cache_dir() -> Path:
    """The build cache directory, created if needed.

    Raises:
        ConfigError: it cannot be created or written.
    """
    path = check_settings().cache_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"the build cache {path} cannot be used ({exc.strerror}); "
                          "set FORKSERVER_CACHE_DIR to a writable directory") from None
    return path

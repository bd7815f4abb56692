"""Settings from the environment, read once, in one place (the README lists them)."""
import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


@dataclass(frozen=True)
class Settings:
    cache_dir: Path = field(
        default_factory=lambda: Path(
            os.environ.get("FORKSERVER_CACHE_DIR")
            or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forkserver"
        )
    )
    compiler: str | None = field(default_factory=lambda: os.environ.get("FORKSERVER_CC") or None)
    no_affinity: bool = field(default_factory=lambda: _flag("FORKSERVER_NO_AFFINITY"))
    debug: bool = field(default_factory=lambda: _flag("FORKSERVER_DEBUG"))
    init_timeout_ms: int = field(
        default_factory=lambda: int(os.environ.get("FORKSERVER_INIT_TIMEOUT_MS", "10000"))
    )


SETTINGS = Settings()

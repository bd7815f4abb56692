"""forkserver: a fork-server snapshot engine for fuzzing on Linux."""

__version__ = "0.1.0"

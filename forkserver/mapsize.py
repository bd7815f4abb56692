"""How large a target's coverage map is, and how large a shared map to give it.

A target learns the size of the map it is given from AFL_MAP_SIZE (AFL++'s runtime
refuses to run a map larger than that) and announces its own size in the handshake.
We start, as afl-fuzz does, with 8 MiB or the user's AFL_MAP_SIZE if larger, and give
a target that needs more a larger map and a restart. A target that only says "too
large" (an error word has no size) is asked with AFL_DUMP_MAP_SIZE, which AFL++'s
runtime and ours answer by printing the size and exiting."""
import subprocess

from .native import const_str, lib

DEFAULT_CAPACITY = lib.FS_OPT_MAX_MAPSIZE
# guard numbers are u32: no map is larger
MAX_CAPACITY = 1 << 32
# a target that says neither how large its map is nor dumps a size larger than it was
# given is tried with twice the map, up to this
BLIND_LIMIT = 64 << 20
DUMP_TIMEOUT_S = 30


class MapTooSmall(Exception):
    """The target needs a larger map than it was given; needed is its size if it said."""

    def __init__(self, needed: int | None):
        super().__init__(f"the target needs a coverage map of {needed or 'unknown'} bytes")
        self.needed = needed


def round_up(size: int) -> int:
    """AFL++ sizes maps in multiples of 64 bytes."""
    return (size + 63) & ~63


def env_map_size(env: dict[str, str]) -> int | None:
    """AFL_MAP_SIZE as the user set it, if it is a size."""
    value = env.get(const_str(lib.FS_ENV_MAP_SIZE), "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def initial_capacity(env: dict[str, str]) -> int:
    """The map a target gets first: 8 MiB, or the user's AFL_MAP_SIZE if that is larger."""
    return min(MAX_CAPACITY, max(DEFAULT_CAPACITY, round_up(env_map_size(env) or 0)))


def capacity_for(needed: int) -> int:
    return min(MAX_CAPACITY, max(DEFAULT_CAPACITY, round_up(needed)))


def larger_capacity(capacity: int, needed: int | None, dump) -> int | None:
    """The next map to try after capacity was too small: the size the target said, else
    the size it dumps (dump(), called only then), else twice as much up to
    BLIND_LIMIT; None when there is nothing left to try. AFL++'s runtime dumps the size
    it knows when its shared map is set up, which misses guards numbered later (by a
    constructor, a dlopen): doubling finds those."""
    for size in (needed, None if needed else dump()):
        if size and size > capacity:
            return capacity_for(size) if size <= MAX_CAPACITY else None
    return capacity * 2 if capacity < BLIND_LIMIT else None


def dumped_map_size(argv: list[str], env: dict[str, str]) -> int | None:
    """The size the target prints under AFL_DUMP_MAP_SIZE (before reading any input),
    or None if it prints no number."""
    env = dict(env)
    env[const_str(lib.FS_ENV_DUMP_MAP_SIZE)] = "1"
    try:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=DUMP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.decode(errors="replace").split()
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def with_map_size(env: dict[str, str], capacity: int) -> dict[str, str]:
    """env with AFL_MAP_SIZE set to the map the target is given."""
    env = dict(env)
    env[const_str(lib.FS_ENV_MAP_SIZE)] = str(capacity)
    return env


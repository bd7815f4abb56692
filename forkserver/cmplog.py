"""The comparison log a `forkserver build --cmplog` binary writes (struct fs_cmplog in
fs_protocol.h): one shared segment, outside every snapshot, that the runtime fills with
the operands of the program's comparisons while it is enabled.

Logging is per input: enable, clear, run one input, read. Reading gives each logged
comparison once, in site order, as input_to_state's IntComparison and BytesComparison.
"""
import numpy as np

from .input_to_state import BytesComparison, IntComparison
from .native import const_str, ffi, lib
from .shm import SharedMemory

INT_DTYPE = np.dtype([("left", "<u8"), ("right", "<u8"), ("size", "<u4"), ("pad", "<u4")])
BYTES_DTYPE = np.dtype([("left_len", "u1"), ("right_len", "u1"), ("left", "u1", lib.FS_CMPLOG_BYTES_MAX),
                        ("right", "u1", lib.FS_CMPLOG_BYTES_MAX)])


class CmpLog:
    """The segment, and what one input's run left in it."""

    def __init__(self):
        if INT_DTYPE.itemsize != ffi.sizeof("struct fs_cmp_int") or \
                BYTES_DTYPE.itemsize != ffi.sizeof("struct fs_cmp_bytes"):
            raise AssertionError("the comparison log's layout differs from fs_protocol.h")
        self.shm = SharedMemory(ffi.sizeof("struct fs_cmplog"))
        self.table = ffi.cast("struct fs_cmplog *", self.shm.ptr)
        self.table.magic = lib.FS_CMPLOG_MAGIC
        self.table.enabled = 0
        buf = self.shm.buffer

        def view(field: str, dtype, shape) -> np.ndarray:
            offset = ffi.offsetof("struct fs_cmplog", field)
            count = int(np.prod(shape))
            return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)

        self.int_hits = view("int_hits", np.uint32, (lib.FS_CMPLOG_INT_SITES,))
        self.bytes_hits = view("bytes_hits", np.uint32, (lib.FS_CMPLOG_BYTES_SITES,))
        self.ints = view("ints", INT_DTYPE, (lib.FS_CMPLOG_INT_SITES, lib.FS_CMPLOG_INT_SLOTS))
        self.bytes = view("bytes", BYTES_DTYPE, (lib.FS_CMPLOG_BYTES_SITES, lib.FS_CMPLOG_BYTES_SLOTS))

    def env(self) -> dict[str, str]:
        """What a cmplog build's environment needs to find the segment."""
        return {const_str(lib.FS_ENV_CMPLOG_SHM_ID): str(self.shm.id)}

    def begin(self) -> None:
        """Before the input to log: the table empty, logging on."""
        self.int_hits[:] = 0
        self.bytes_hits[:] = 0
        self.table.enabled = 1

    def end(self) -> None:
        self.table.enabled = 0

    def records(self) -> dict[tuple[str, int, int], IntComparison | BytesComparison]:
        """What the last input logged, by (kind, site, slot): a comparison's place in the
        program and the order it ran there, which a run of the same path repeats."""
        out: dict[tuple[str, int, int], IntComparison | BytesComparison] = {}
        for site in np.flatnonzero(self.int_hits):
            for slot, e in enumerate(self.ints[site, :min(int(self.int_hits[site]), lib.FS_CMPLOG_INT_SLOTS)]):
                size = int(e["size"])
                if size in (1, 2, 4, 8):
                    out[("int", int(site), slot)] = IntComparison(int(e["left"]), int(e["right"]), size)
        for site in np.flatnonzero(self.bytes_hits):
            for slot, e in enumerate(self.bytes[site, :min(int(self.bytes_hits[site]), lib.FS_CMPLOG_BYTES_SLOTS)]):
                out[("bytes", int(site), slot)] = BytesComparison(e["left"][:e["left_len"]].tobytes(),
                                                                  e["right"][:e["right_len"]].tobytes())
        return out

    def comparisons(self) -> list[IntComparison | BytesComparison]:
        """Each distinct comparison the last input logged, site by site."""
        return list(dict.fromkeys(self.records().values()))

    def hits(self) -> int:
        """How many comparisons the last input made (logged or past a site's slots)."""
        return int(self.int_hits.sum(dtype=np.uint64) + self.bytes_hits.sum(dtype=np.uint64))

    def close(self) -> None:
        self.shm.close()

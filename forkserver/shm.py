"""SysV shared memory segments: the coverage map, the test-case buffer, the control block."""
import numpy as np

from .native import check, ffi, lib


class SharedMemory:
    """A private SysV segment, attached here and removed on close.

    The segment is marked for removal as soon as it is attached here: it lives while
    some process has it attached, and nothing leaks however this process dies. Linux
    still lets a marked segment be attached by its id, so targets that attach late (an
    execve per input, afl-fuzz builds attaching in a constructor) still can.
    """

    def __init__(self, size: int):
        self.size = size
        id_out = ffi.new("int *")
        check(lib.fs_host_shm_create(size, id_out), "shmget")
        self.id = id_out[0]
        addr = ffi.new("void **")
        try:
            check(lib.fs_host_shm_attach(self.id, 0, addr), "shmat")
        except Exception:
            lib.fs_host_shm_remove(self.id)
            raise
        self.ptr = addr[0]
        self.buffer = ffi.buffer(self.ptr, size)
        self.array = np.frombuffer(self.buffer, dtype=np.uint8)
        self._removed = False
        self.mark_removed()

    def mark_removed(self) -> None:
        """Removes the id; attached processes keep the memory (call after the target attached)."""
        if not self._removed:
            lib.fs_host_shm_remove(self.id)
            self._removed = True

    def close(self) -> None:
        if self.ptr is not None:
            self.mark_removed()
            self.array = None
            self.buffer = None
            lib.fs_host_shm_detach(self.ptr)
            self.ptr = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

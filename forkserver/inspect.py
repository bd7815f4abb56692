"""What a target binary is: ELF or not, which runtime it carries, which markers."""
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import sanitizers
from .errors import TargetError
from .native import const_str, lib

ELF_MAGIC = b"\x7fELF"
EM_X86_64 = 62
# e_machine values a user may meet, for the message
MACHINES = {3: "x86 (32-bit)", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390", 40: "ARM",
            183: "AArch64", 243: "RISC-V", 258: "LoongArch"}


@dataclass
class BinaryInfo:
    path: str
    arch: str = "?"
    pie: bool = False
    forkserver_runtime: bool = False  # linked with our runtime
    afl_instrumented: bool = False    # carries __AFL_SHM_ID: afl-fuzz and we can drive it
    persistent: bool = False          # ##SIG_AFL_PERSISTENT##
    deferred: bool = False            # ##SIG_AFL_DEFER_FORKSRV##
    libfuzzer: bool = False           # LLVMFuzzerTestOneInput
    coverage: str | None = None       # trace-pc-guard, trace-pc, or None
    cmplog: bool = False              # logs comparison operands (forkserver build --cmplog)
    sanitizers: list[str] = field(default_factory=list)  # address, undefined, ... (-fsanitize names)
    symbols: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def check_target(path: str | os.PathLike) -> Path:
    """Raises TargetError unless path is an existing, executable ELF file."""
    p = Path(path)
    if not p.exists():
        raise TargetError(f"target not found: {p}")
    if p.is_dir():
        raise TargetError(f"target is a directory, not a program: {p}")
    if not p.is_file():
        raise TargetError(f"target is not a regular file: {p}")
    try:
        with open(p, "rb") as f:
            header = f.read(20)
    except OSError as exc:
        raise TargetError(f"cannot read target {p}: {exc.strerror}") from exc
    if header[:4] != ELF_MAGIC:
        raise TargetError(f"target is not an ELF binary: {p} (a C source? pass the .c file to build it)")
    byteorder = "big" if header[5:6] == b"\x02" else "little"
    machine = int.from_bytes(header[18:20], byteorder) if len(header) >= 20 else -1
    is_64bit = header[4:5] == b"\x02"
    if machine != EM_X86_64 or not is_64bit:
        what = "x32 (x86-64 with 32-bit pointers)" if machine == EM_X86_64 else \
            MACHINES.get(machine, f"machine type {machine}")
        raise TargetError(f"target is an ELF binary for {what}, not x86-64: {p} "
                          "(forkserver runs x86-64 Linux targets only)")
    if not os.access(p, os.X_OK):
        raise TargetError(f"target is not executable: {p} (chmod +x?)")
    return p


def scan_markers(path: Path) -> BinaryInfo:
    """The quick look afl-fuzz also takes: NUL-terminated marker strings in the file."""
    data = path.read_bytes()
    info = BinaryInfo(path=str(path))
    marker = lambda c: const_str(c).encode() + b"\0" in data  # noqa: E731
    info.forkserver_runtime = marker(lib.FS_SIG_RUNTIME)
    info.afl_instrumented = marker(lib.FS_SIG_SHM)
    info.persistent = marker(lib.FS_SIG_PERSISTENT)
    info.deferred = marker(lib.FS_SIG_DEFER)
    info.libfuzzer = marker(lib.FS_SIG_LIBFUZZER) or b"LLVMFuzzerTestOneInput\0" in data
    info.sanitizers = sanitizers.detect(data)
    info.cmplog = marker(lib.FS_SIG_CMPLOG)
    # Our runtime defines both callbacks, so their names say nothing; the guards section
    # exists only where the compiler put trace-pc-guard instrumentation in.
    if b"__sancov_guards\0" in data:
        info.coverage = "trace-pc-guard"
    elif b"__afl_area_ptr\0" in data:
        info.coverage = "afl"
    elif b"__sanitizer_cov_trace_pc\0" in data:
        info.coverage = "trace-pc"
    return info


def inspect_binary(path: str | os.PathLike) -> BinaryInfo:
    """Full inspection with lief: markers plus architecture, PIE and key symbols."""
    import lief

    p = check_target(path)
    info = scan_markers(p)
    elf = lief.ELF.parse(str(p))
    if elf is None:
        raise TargetError(f"lief cannot parse {p} as ELF")
    info.arch = str(elf.header.machine_type).split(".")[-1]
    info.pie = bool(elf.is_pie)
    names = {s.name for s in elf.symbols}
    for sym in ("main", "LLVMFuzzerTestOneInput", "LLVMFuzzerInitialize", "forkserver_init",
                "__sanitizer_cov_trace_pc_guard", "__afl_area_ptr", "__afl_persistent_loop"):
        info.symbols[sym] = sym in names
    return info

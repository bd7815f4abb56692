"""cffi build of the orchestrator's C helpers (API mode, out of line).

The protocol header csrc/include/fs_protocol.h is the single source of every shared
constant and struct: its integer and string #defines and its structs are turned into
the cffi declaration here, mechanically, so Python never re-types a constant.
"""
import hashlib
import os
import pathlib
import re

from cffi import FFI

CSRC = pathlib.Path(__file__).resolve().parent.parent
PROTOCOL_H = CSRC / "include" / "fs_protocol.h"
HOST_H = CSRC / "host" / "fs_host.h"
MUTATE_H = CSRC / "host" / "fs_mutate.h"


def protocol_cdef(text: str) -> str:
    """Integer and string #defines plus the structs of a C header, as cffi cdef text."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for name, value in re.findall(r"^#define[ \t]+(FS_\w+)[ \t]+(.+?)[ \t]*$", text, flags=re.M):
        if name == "FS_PROTOCOL_H":
            continue
        if value.startswith('"'):
            out.append(f"static char *const {name};")
        elif re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)", value):
            out.append(f"#define {name} {value}")
    out.extend(re.findall(r"^struct \w+ \{.*?^\};", text, flags=re.S | re.M))
    return "\n".join(out)


def protocol_digest() -> str:
    return hashlib.sha256(PROTOCOL_H.read_bytes()).hexdigest()[:16]


def rel(path: pathlib.Path) -> str:
    """setuptools wants source paths relative to the project root."""
    return os.path.relpath(path, CSRC.parent)


ffibuilder = FFI()
ffibuilder.cdef(protocol_cdef(PROTOCOL_H.read_text()))
for header in (HOST_H, MUTATE_H):
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    ffibuilder.cdef("\n".join(line for line in text.splitlines() if not line.startswith("#")))
ffibuilder.cdef("static char *const FS_PROTOCOL_DIGEST;")
ffibuilder.set_source(
    "forkserver._native",
    '#include "fs_protocol.h"\n#include "fs_host.h"\n#include "fs_mutate.h"\n'
    f'static char *const FS_PROTOCOL_DIGEST = "{protocol_digest()}";\n',
    sources=[rel(CSRC / "host" / "fs_host.c"), rel(CSRC / "host" / "fs_mutate.c"), rel(CSRC / "common" / "dirty_probe.c")],
    include_dirs=[rel(CSRC / "include"), rel(CSRC / "host"), rel(CSRC / "common")],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

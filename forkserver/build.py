"""Compiles harnesses with the forkserver runtime and coverage instrumentation."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .config import cache_dir, check_settings
from .errors import BuildError, ForkserverError
from .outdir import write_whole
from .sanitizers import MARKER_PREFIX

RUNTIME_SOURCES = [
    "runtime/config.c", "runtime/coverage.c", "runtime/runtime.c", "runtime/server.c",
    "runtime/maps.c", "runtime/snapshot.c", "runtime/syscall_watch.c", "runtime/process_state.c",
    "runtime/track.c", "runtime/track_full_copy.c", "runtime/track_pagemap_scan.c", "runtime/track_soft_dirty.c",
    "runtime/track_mprotect.c", "runtime/write_faults.c", "runtime/sparse.c", "runtime/libc_direct.c",
    "runtime/sanitizer_heap.c", "runtime/arch_x86_64.c", "common/dirty_probe.c",
]
MAIN_ENTRY = "runtime/main_entry.c"
AFL_SNAPSHOT = "runtime/afl_snapshot.c"
# the comparison log, in our table and in AFL++'s map (afl-fuzz -c)
CMPLOG = ["runtime/cmplog.c", "runtime/cmplog_aflpp.c"]
RUNTIME_TEXT = "fs_runtime_text"  # the runtime's code in cmplog builds
# the string functions cmplog.c defines: calls to them must stay calls, not inlined code
CMPLOG_FUNCTIONS = ("memcmp", "bcmp", "strcmp", "strncmp", "strcasecmp", "strncasecmp", "memmem", "strstr")
LIBFUZZER_DRIVER = ["runtime/libfuzzer_driver.c", "runtime/input_window.c"]
SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".cxx"}


def csrc_dir() -> Path:
    """The runtime sources: shipped inside the package, or the checkout's csrc/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "csrc", here.parent / "csrc"):
        if (candidate / "include" / "fs_protocol.h").exists():
            return candidate
    raise BuildError("the forkserver runtime sources (csrc/) are missing; reinstall the package")


def protocol_header() -> Path:
    return csrc_dir() / "include" / "fs_protocol.h"


def pick_compiler(cc: str | None = None) -> str:
    """clang when present (trace-pc-guard gives exact edges), else gcc."""
    wanted = cc or check_settings().compiler
    candidates = [wanted] if wanted else ["clang", "gcc"]
    for name in candidates:
        if shutil.which(name):
            return name
    raise BuildError(
        f"no C compiler found (tried {', '.join(candidates)}); install clang (apt-get install clang)"
    )


def _family(cc: str) -> str:
    return "clang" if "clang" in Path(cc).name else "gcc"


def _cxx_for(cc: str) -> str:
    name = Path(cc).name
    return cc.replace(name, name.replace("clang", "clang++").replace("gcc", "g++"))


def coverage_flags(cc: str, cmplog: bool = False) -> list[str]:
    kind = "trace-pc-guard" if _family(cc) == "clang" else "trace-pc"
    if not cmplog:
        return [f"-fsanitize-coverage={kind}"]
    return [f"-fsanitize-coverage={kind},trace-cmp", *(f"-fno-builtin-{f}" for f in CMPLOG_FUNCTIONS)]


def is_libfuzzer_source(path: Path) -> bool:
    try:
        return "LLVMFuzzerTestOneInput" in path.read_text(errors="replace")
    except OSError:
        return False


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        hint = ""
        if re.search(r"cannot find .*(libclang_rt|libasan|libubsan)", proc.stderr):
            hint = ("\nthe compiler's sanitizer runtime is not installed (Debian: apt-get install "
                    "libclang-rt-14-dev for clang, libgcc-12-dev for gcc)")
        raise BuildError(f"compiling failed: {' '.join(cmd)}\n{tail}{hint}")


def _runtime_store(cc: str) -> Path | None:
    """Where compiled runtime objects are kept between builds: one directory per compiler
    and runtime source tree (a change to either makes a new one). None without a
    writable cache: every build then compiles the runtime itself."""
    try:
        compiler = Path(shutil.which(cc) or cc).resolve()
        st = compiler.stat()
        key = _digest([Path(__file__), *_runtime_files()], f"{compiler} {st.st_size} {st.st_mtime_ns}")
        return cache_dir() / "runtime" / key
    except (OSError, ForkserverError):
        return None


def _runtime_objects(cc: str, workdir: Path, libfuzzer: bool, afl_snapshot: bool, cmplog: bool) -> list[Path]:
    """The runtime's objects for this build, compiled once per compiler and source tree
    (~2 s a build otherwise)."""
    root = csrc_dir()
    includes = [f"-I{root / d}" for d in ("include", "runtime", "common")]
    sources = RUNTIME_SOURCES + (LIBFUZZER_DRIVER if libfuzzer else [MAIN_ENTRY]) + ([AFL_SNAPSHOT] if afl_snapshot else [])
    sources += CMPLOG if cmplog else []
    store = _runtime_store(cc)
    objects = []
    for rel in sources:
        name = rel.replace("/", "_") + (".cmplog" if cmplog else "") + ".o"
        if store is not None and (store / name).exists():
            objects.append(store / name)
            continue
        obj = workdir / name
        # the runtime itself is never instrumented, and fortify checks would reject the
        # longjmp from the runtime's own stack back onto the program's; cmplog.c defines
        # memcmp and kin, which the compiler must not turn into calls to themselves
        own = ["-fno-builtin"] + (["-fno-tree-loop-distribute-patterns"] if _family(cc) == "gcc" else []) \
            if rel in CMPLOG else []
        _run([cc, "-c", "-O2", "-g", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=0", *own, *includes,
              str(root / rel), "-o", str(obj)])
        if cmplog:  # cmplog.c tells the runtime's comparisons from the program's by this section
            _run(["objcopy", *(a for name in (".text", ".text.unlikely", ".text.startup", ".text.hot")
                               for a in ("--rename-section", f"{name}={RUNTIME_TEXT}")), str(obj)])
        objects.append(_keep(obj, store))
    return objects


def _keep(obj: Path, store: Path | None) -> Path:
    """obj, copied into the store whole (parallel builds never see half an object)."""
    if store is None:
        return obj
    try:
        store.mkdir(parents=True, exist_ok=True)
        return write_whole(store / obj.name, obj.read_bytes())
    except OSError:
        return obj


def sanitizer_flags(sanitize: list[str]) -> list[str]:
    """Compile and link flags for -fsanitize names: UBSan findings abort instead of
    printing and going on, so that each is a crash."""
    if not sanitize:
        return []
    flags = [f"-fsanitize={','.join(sanitize)}", "-fno-omit-frame-pointer"]
    if "undefined" in sanitize:
        flags.append("-fno-sanitize-recover=all")
    return flags


def _sanitizer_marker(workdir: Path, sanitize: list[str]) -> Path:
    """A source whose only content is the string saying which sanitizers the build
    carries: ASan's runtime holds UBSan's handlers, so symbols cannot tell."""
    src = workdir / "sanitize_marker.c"
    src.write_text('__attribute__((used)) static const char marker[] = "%s%s##";\n'
                   % (MARKER_PREFIX.decode(), ",".join(sanitize)))
    return src


def build(sources: list[Path], output: Path, cc: str | None = None,
          extra_flags: list[str] | tuple[str, ...] = (), afl_snapshot: bool = False,
          sanitize: list[str] | tuple[str, ...] = (), cmplog: bool = False) -> Path:
    """Compiles and links harness sources with the runtime. Returns the output path.

    Args:
        afl_snapshot: add AFL++'s persistent-mode marker, so that afl-fuzz drives the
            target as a persistent one and the runtime answers in snapshot mode.
        sanitize: -fsanitize names (address, undefined, ...) for the harness, not the
            runtime, which is never instrumented.
        cmplog: log comparison operands (trace-cmp hooks, string functions) for the
            fuzzer's input-to-state stage: the second binary of `forkserver fuzz -c`.

    Raises:
        BuildError: a source is missing or the compiler fails.
    """
    from .native import check_protocol

    check_protocol(protocol_header())  # targets must speak the helpers' protocol
    sources = [Path(s) for s in sources]
    for src in sources:
        if not src.is_file():
            raise BuildError(f"no such source file: {src}")
        if src.suffix not in SOURCE_SUFFIXES:
            raise BuildError(f"{src} is not a C or C++ source ({', '.join(sorted(SOURCE_SUFFIXES))})")
    if cmplog and (sanitize or any(str(f).startswith("-fsanitize=") for f in extra_flags)):
        raise BuildError("a --cmplog build cannot carry sanitizers: its string functions would replace the "
                         "sanitizer's checked ones. Build the cmplog binary without them, and fuzz the sanitizer "
                         "build with it (forkserver fuzz -c CMPLOG_BINARY)")
    cc = pick_compiler(cc)
    libfuzzer = any(is_libfuzzer_source(s) for s in sources)
    cxx = any(s.suffix != ".c" for s in sources)
    include = f"-I{csrc_dir() / 'include'}"
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the output directory {output.parent}: {exc.strerror}") from None
    if output.is_dir():
        raise BuildError(f"the output {output} is a directory; name the binary to write")
    with tempfile.TemporaryDirectory(prefix="forkserver-build-") as tmp:
        work = Path(tmp)
        objects = _runtime_objects(cc, work, libfuzzer, afl_snapshot, cmplog)
        san_flags = sanitizer_flags(list(sanitize))
        extra_flags = [*san_flags, *extra_flags]
        if sanitize:
            marker = work / "sanitize_marker.o"
            _run([cc, "-c", str(_sanitizer_marker(work, list(sanitize))), "-o", str(marker)])
            objects.append(marker)
        for i, src in enumerate(sources):
            obj = work / f"harness{i}.o"
            compiler = _cxx_for(cc) if src.suffix != ".c" else cc
            _run([compiler, "-c", "-O2", "-g", include, *coverage_flags(cc, cmplog), *extra_flags, str(src), "-o", str(obj)])
            objects.append(obj)
        linker = _cxx_for(cc) if cxx else cc
        # bind every symbol at start-up: lazy binding would write the GOT during inputs
        link = [linker, *map(str, objects), "-pthread", "-lm", "-Wl,-z,relro,-z,now", "-o", str(output)]
        if not libfuzzer:
            link.insert(1, "-Wl,--wrap=main")
        _run(link + list(extra_flags))
    return output


def _runtime_files() -> list[Path]:
    """Every runtime source and header: what a build's runtime part depends on."""
    return sorted(p for p in csrc_dir().rglob("*") if p.suffix in (".c", ".h"))


def _digest(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_cached(source: Path, cc: str | None = None, cmplog: bool = False) -> Path:
    """Builds a single harness source once; later calls reuse the binary."""
    source = Path(source)
    if not source.is_file():
        raise BuildError(f"no such source file: {source}")
    cc = pick_compiler(cc)
    key = _digest([source, Path(__file__), *_runtime_files()], cc + (" cmplog" if cmplog else ""))  # flags: this file
    out = cache_dir() / "builds" / f"{source.stem}{'-cmplog' if cmplog else ''}-{key}"
    if not out.exists():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        build([source], tmp, cc, cmplog=cmplog)
        os.replace(tmp, out)
    return out

"""Sanitizer builds: the options every target runs with, which sanitizers a binary
carries, and the one-line summary of a sanitizer's report.

The defaults are afl-fuzz's, so that a sanitizer's finding is a crash the fork server
sees (a signal, not an exit code): abort on error, no symbolising, no leak check at
exit, and no sanitizer handlers for the signals a crash is made of."""
import re

from .errors import TargetError

# Sanitizer names as `-fsanitize=` takes them.
KNOWN = ("address", "undefined", "memory", "thread", "leak")

_NO_SIGNAL_HANDLERS = "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0"
_COMMON = f"abort_on_error=1:symbolize=0:allocator_may_return_null=1:{_NO_SIGNAL_HANDLERS}"

# ASan builds read LSAN_OPTIONS (and UBSan builds UBSAN_OPTIONS) after their own, and
# flags common to all sanitizers set there apply to the whole runtime: none of ours
# differ between the variables, and none sets an exit code.
DEFAULT_OPTIONS = {
    "ASAN_OPTIONS": f"{_COMMON}:detect_leaks=0:malloc_context_size=0:detect_odr_violation=0",
    "UBSAN_OPTIONS": f"{_COMMON}:halt_on_error=1:report_error_type=1",
    "MSAN_OPTIONS": f"{_COMMON}:exit_code=86:msan_track_origins=0",
    "LSAN_OPTIONS": "symbolize=0:print_suppressions=0",
}

# With leak detection, LeakSanitizer checks at the end of each input (the runtime calls
# its recoverable check), not at exit. It ignores blocks allocated with no stack of
# their own (malloc_context_size below 2), so allocations record one, as afl-fuzz's
# LeakSanitizer defaults do.
LEAK_OPTIONS = {
    "ASAN_OPTIONS": "detect_leaks=1:leak_check_at_exit=0:malloc_context_size=30",
    "LSAN_OPTIONS": "detect_leaks=1:leak_check_at_exit=0:malloc_context_size=30",
}


def _names(options: str) -> set[str]:
    return {o.split("=", 1)[0].strip() for o in options.split(":") if o.strip()}


def sanitizer_env(user_env: dict[str, str], detect_leaks: bool = False) -> dict[str, str]:
    """The *_OPTIONS variables for a target: our defaults, then what the user set. An
    option the user named in any of them is dropped from our defaults in all of them:
    one binary can read several (ASan+UBSan reads both ASAN_ and UBSAN_OPTIONS, and the
    later one sets their common flags), so the user's choice must not be undone."""
    user_names = set().union(*(_names(user_env.get(name, "")) for name in DEFAULT_OPTIONS))
    out = {}
    for name, default in DEFAULT_OPTIONS.items():
        ours = default.split(":")
        if detect_leaks and name in LEAK_OPTIONS:
            ours += LEAK_OPTIONS[name].split(":")
        # a later option overrides an earlier one of the same name: keep the last of ours
        kept = {}
        for opt in ours:
            kept[opt.split("=", 1)[0]] = opt
        parts = [opt for key, opt in kept.items() if key not in user_names]
        if user_env.get(name):
            parts.append(user_env[name])
        out[name] = ":".join(parts)
    return out


# Runtime symbols that say a sanitizer is linked in. ASan's runtime carries UBSan's
# handlers too, so UBSan counts only without ASan, unless the build marker names it.
_RUNTIME_SYMBOLS = {
    "address": b"__asan_init\0",
    "memory": b"__msan_init\0",
    "thread": b"__tsan_init\0",
    "leak": b"__lsan_init\0",
}
MARKER_PREFIX = b"##FORKSERVER_SANITIZE:"


def detect(data: bytes) -> list[str]:
    """The sanitizers a binary carries, from its bytes."""
    found = set()
    marker = re.search(re.escape(MARKER_PREFIX) + rb"([a-z,]+)##", data)
    if marker:
        found.update(n for n in marker.group(1).decode().split(",") if n)
    for name, symbol in _RUNTIME_SYMBOLS.items():
        if symbol in data:
            found.add(name)
    if b"__ubsan_handle_" in data and not found & {"address", "memory", "thread"}:
        found.add("undefined")
    if "address" in found:
        found.discard("leak")  # ASan's runtime includes LeakSanitizer
    return [n for n in KNOWN if n in found]


def parse_list(text: str) -> list[str]:
    """`address,undefined` -> names; raises TargetError on a name -fsanitize does not take
    here, and on MemorySanitizer."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in KNOWN:
            raise TargetError(f"unknown sanitizer {n!r}; choose from {', '.join(KNOWN)}")
    if "memory" in names:
        raise TargetError(msan_refusal())
    if "thread" in names:
        raise TargetError("ThreadSanitizer is not supported: the fork server and snapshots run one "
                          "thread per input; use address or undefined")
    return names


def msan_refusal(path: str = "") -> str:
    what = f"{path} is built with MemorySanitizer" if path else "MemorySanitizer is not supported"
    return (f"{what}: MSan needs every library, the C library included, to be built with it, or it "
            "reports false positives on memory the uninstrumented code wrote; build with "
            "--sanitize address,undefined instead")


def check_runnable(sanitizers: list[str], path: str) -> None:
    """Refuses binaries that cannot run right here."""
    if "memory" in sanitizers:
        raise TargetError(msan_refusal(path))
    if "thread" in sanitizers:
        raise TargetError(f"{path} is built with ThreadSanitizer, which fork servers and snapshots do "
                          "not support (it reserves memory per thread and needs them all)")


# ---- reports ----

_ERROR = re.compile(r"==\d+==\s*ERROR: (\w+Sanitizer): ([\w-]+)")
_SUMMARY = re.compile(r"^SUMMARY: (\w+Sanitizer): (.*)$", re.M)
_ACCESS = re.compile(r"^(READ|WRITE) of size (\d+)", re.M)
_UBSAN = re.compile(r"runtime error: ")
_BUILD_ID = re.compile(r"\s*\(BuildId: [0-9a-f]+\)")
_SOURCE_PATH = re.compile(r"(?<!\S)/(?:[^\s/]+/)*([^\s/]+:\d+)")
_MODULE_PATH = re.compile(r"\((?:[^()\s]*/)?([^/()\s]+\+0x[0-9a-f]+)\)")


def report_summary(text: str) -> str:
    """The one-line summary of the last sanitizer report in text, "" if there is none:
    `AddressSanitizer: heap-buffer-overflow (h+0x11e2c5) in f, WRITE of size 1`. Module
    paths are cut to their names; leaks say no sizes (they vary with the input)."""
    last = None
    for last in _SUMMARY.finditer(text):
        pass
    errors = list(_ERROR.finditer(text))
    error = errors[-1] if errors else None
    if error and error.group(1) == "LeakSanitizer":
        return "LeakSanitizer: detected memory leaks"
    if last is None:
        if error:
            return f"{error.group(1)}: {error.group(2)}"
        return "UndefinedBehaviorSanitizer: undefined-behavior" if _UBSAN.search(text) else ""
    where = _MODULE_PATH.sub(r"(\1)", _BUILD_ID.sub("", last.group(2)))
    where = _SOURCE_PATH.sub(r"\1", where).strip()
    where = where[:-3] if where.endswith(" in") else where  # no function name without symbols
    summary = f"{last.group(1)}: {where}"
    access = None
    for access in _ACCESS.finditer(text, error.start() if error else 0):
        break
    if access and last.group(1) == "AddressSanitizer":
        summary += f", {access.group(1)} of size {access.group(2)}"
    return summary

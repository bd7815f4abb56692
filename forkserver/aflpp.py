"""Which AFL++ releases work with our builds, and how: the version matrix that
`forkserver doctor` and `forkserver build --cmplog` report (README, "AFL++").

Facts behind it (AFLPP_PROTOCOL.md, AFL++'s include/cmplog.h per tag):
- every afl-fuzz from 4.00c drives our builds through the old handshake; 4.20c and
  later also take the new one, and require it of a CMPLOG instance (-c);
- the comparison map has three layouts: 4.00c-4.10c, 4.20c-4.21c, 4.22a (the newest
  we have read). The runtime tells them apart by the map's size and refuses any other
  size; 3.x has 4.0x's size but no string lengths, so it would be misread."""
import re

# (first release, last release or None, name) of each comparison-map layout we write
CMPLOG_LAYOUTS = [((4, 0), (4, 10), "4.00c-4.10c"), ((4, 20), (4, 21), "4.20c-4.21c"), ((4, 22), None, "4.22a")]
NEWEST_READ = (4, 22)


def release(version: str | None) -> tuple[int, int] | None:
    """"4.04c" -> (4, 4); None for anything else."""
    m = re.fullmatch(r"(\d+)\.(\d+)[a-z]?", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def cmplog_layout(version: str | None) -> str | None:
    """The layout an afl-fuzz release reads its comparisons in, if we write it."""
    rel = release(version)
    if rel is None:
        return None
    for first, last, name in CMPLOG_LAYOUTS:
        if rel >= first and (last is None or rel <= last):
            return name
    return None


def cmplog_support(version: str | None) -> str:
    """Whether and how `afl-fuzz -c` of this release works with our --cmplog builds."""
    rel, layout = release(version), cmplog_layout(version)
    if layout is None:
        return "not supported (AFL++ 4.00c or later is needed)"
    support = f"yes, comparison map {layout}, through a `forkserver build --cmplog` binary"
    if rel > NEWEST_READ:
        support += (f"; newer than {NEWEST_READ[0]}.{NEWEST_READ[1]}a, the newest map we have read: "
                    "a map of another size is refused at start-up")
    if rel == (4, 4):
        support += "; give it -c 0 (Debian's 4.04c runs the main binary for a second one)"
    return support


def compatibility(version: str | None) -> list[str]:
    """What works with this afl-fuzz, one line each (empty if there is none)."""
    rel = release(version)
    if version is None:
        return []
    if rel is None or rel < (4, 0):
        return [f"afl-fuzz {version}: not a release we know; our builds need AFL++ 4.00c or later"]
    handshake = "the old handshake (afl-fuzz warns \"Old fork server model\"; it still works)" if rel >= (4, 20) \
        else "the old handshake"
    lines = [f"drives our builds: yes, through {handshake}", f"afl-fuzz -c: {cmplog_support(version)}"]
    if rel >= (4, 20):
        lines.append("maps over 8 MiB and -c go through the new handshake, chosen by the runtime")
    return lines

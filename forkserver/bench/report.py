"""How benchmark results are shown and stored: terminal tables, numbers, JSON, CSV,
progress lines."""
import csv
import io
import json
import statistics
import sys
import time
from pathlib import Path



def median_or_none(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_num(value: float | None, digits: int = 0) -> str:
    """Thousands separators; small values keep two significant decimals (0.35, not 0)."""
    if value is None:
        return "-"
    if 0 < abs(value) < 10 and digits == 0:
        return f"{value:.2g}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def write_json(obj: dict, dest: str) -> None:
    """Writes obj to the file dest, or to stdout when dest is "-"."""
    text = json.dumps(obj, indent=2) + "\n"
    if dest == "-":
        sys.stdout.write(text)
    else:
        Path(dest).write_text(text)


def write_csv(rows: list[dict], dest: str) -> None:
    """One CSV line per row; lists are joined with ';'."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})
    if dest == "-":
        sys.stdout.write(buf.getvalue())
    else:
        Path(dest).write_text(buf.getvalue())


def progress(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

"""Plots draw the benchmark rows as PNG files with matplotlib's Agg backend, imported only when a plot is asked for."""
import math
from pathlib import Path

from .errors import UsageError

MISSING = "plots need matplotlib: pip install matplotlib (or pip install 'forkserver[plot]')"


def require_matplotlib():
    """Imports matplotlib with the Agg backend.

    Returns:
        matplotlib.pyplot.
    Raises:
        UsageError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise UsageError(MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _measured_rss(rows: list[dict], key: str) -> dict[int, float]:
    """rss_mb -> measured RSS (MiB) from any row of that size that has one (exec rows have none)."""
    out: dict[int, float] = {}
    for r in rows:
        if r.get(key) and r["rss_mb"] not in out:
            out[r["rss_mb"]] = r[key]
    return out


def _line_label(row: dict) -> str:
    label = row["mode"] + (f"/{row['backend']}" if row.get("backend") else "")
    if row.get("build", "forkserver") != "forkserver":
        label += f" [{row['build']}]"
    if row.get("driver", "python") != "python":
        label += f" ({row['driver']} loop)"
    return label


def _plain_log_ticks(axis) -> None:
    """Major ticks as plain numbers (1,000 not 10^3), no labels on minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _save(fig, plt, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def plot_modes(rows: list[dict], path: str | Path, title: str) -> None:
    """exec/s against target RSS, log-log, one line per mode/backend.

    Args:
        rows: `bench --json` rows.
        path: the PNG file to write.
        title: the figure title.
    Raises:
        UsageError: matplotlib is missing.
    """
    plt = require_matplotlib()
    rss = _measured_rss(rows, "target_rss_mb")
    if len({r["rss_mb"] for r in rows}) == 1:
        return _plot_modes_bars(plt, rows, path, title, rss.get(rows[0]["rss_mb"]) if rows else None)
    lines: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in rows:
        if not r.get("execs_per_sec") or r["rss_mb"] not in rss:
            continue
        lines.setdefault(_line_label(r), []).append(
            (rss[r["rss_mb"]], r["execs_per_sec"], r.get("execs_per_sec_min") or r["execs_per_sec"],
             r.get("execs_per_sec_max") or r["execs_per_sec"]))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, points in lines.items():
        points.sort()
        xs, ys, lo, hi = zip(*points)
        ax.errorbar(xs, ys, yerr=[[y - a for y, a in zip(ys, lo)], [b - y for y, b in zip(ys, hi)]],
                    marker="o", capsize=3, label=label)
    _finish_log_log(plt, fig, ax, path, title, "target RSS at the fork point (MiB, VmRSS of the fork server)",
                    "executions per second (median of trials; bars: min..max)")


def _finish_log_log(plt, fig, ax, path, title: str, xlabel: str, ylabel: str) -> None:
    """Log-log axes with plain tick labels, labels, title, grid and legend; then saves."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, plt, path)


def _plot_modes_bars(plt, rows: list[dict], path, title: str, rss_mb: float | None) -> None:
    """One ballast size only: a line against RSS would be a single point, so draw bars."""
    measured = [r for r in rows if r.get("execs_per_sec")]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ys = [r["execs_per_sec"] for r in measured]
    err = [[y - (r.get("execs_per_sec_min") or y) for y, r in zip(ys, measured)],
           [(r.get("execs_per_sec_max") or y) - y for y, r in zip(ys, measured)]]
    ax.barh([_line_label(r) for r in measured], ys, xerr=err, capsize=3, color="tab:blue")
    for i, (y, hi) in enumerate(zip(ys, err[1])):
        ax.text(y + hi, i, f"  {y:,.0f}", va="center", fontsize=8)
    ax.set_xscale("log")
    if ys:  # bars start at a power of ten below the slowest row, with room for the labels
        ax.set_xlim(10 ** math.floor(math.log10(min(ys))), max(ys) * 4)
    _plain_log_ticks(ax.xaxis)
    ax.invert_yaxis()
    ax.set_xlabel("executions per second (median of trials; bars: min..max; log scale)")
    ax.set_ylabel("mode/backend")
    where = f", target RSS {rss_mb:.1f} MiB" if rss_mb else ""
    ax.set_title(f"{title}{where}")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    _save(fig, plt, path)


def plot_spawn(rows: list[dict], path: str | Path, title: str) -> None:
    """Microseconds per operation against RSS, log-log, one line per operation.

    Args:
        rows: `bench spawn --json` rows.
        path: the PNG file to write.
        title: the figure title.
    Raises:
        UsageError: matplotlib is missing.
    """
    plt = require_matplotlib()
    lines: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("us_per_op") and r.get("rss_measured_mb"):
            label = r["operation"] + (f" ({r['backend']})" if r.get("backend") else "")
            lines.setdefault(label, []).append((r["rss_measured_mb"], r["us_per_op"]))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, points in lines.items():
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=label)
    _finish_log_log(plt, fig, ax, path, title,
                    "RSS of the process (MiB, VmRSS: the parent, or the big_heap fork server)",
                    "microseconds per operation")

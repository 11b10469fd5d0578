"""The report's figures (matplotlib, Agg): one PNG per question the report answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_cl.evals.plan import METHODS
from agent_cl.evals.report import (
    cost,
    kinds_by_method,
    one_night,
    scaling,
    sequential,
    sequential_skills,
    spread,
    teachers,
)

Units = dict[str, dict[str, Any]]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(data: dict[str, Any], out: Path) -> list[Path]:
    """Every figure the results allow; returns the files written."""
    units: Units = data["units"]
    plan = data.get("plan", {})
    written = []
    for name, draw in (
        ("accuracy.png", _accuracy),
        ("forgetting.png", _forgetting),
        ("sequential.png", lambda u, p: _sequential(u, plan, p)),
        ("scaling.png", _scaling),
        ("breakeven.png", _breakeven),
    ):
        figure = draw(units, out / name)
        if figure is not None:
            written.append(figure)
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _grouped_bars(ax, series: dict[str, list[tuple[float, float, int]]]) -> None:
    """One bar per series at each group position, with the spread as error bars."""
    width = 0.8 / max(len(series), 1)
    for i, (label, stats) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(stats))]
        means, sds = [m for m, _, _ in stats], [sd for _, sd, _ in stats]
        ax.bar(xs, means, width, yerr=sds, label=label)


def _accuracy(units: Units, path: Path) -> Path | None:
    table = one_night(units)
    if not table:
        return None
    plt = _pyplot()
    suites = list(table)
    methods = [m for m in METHODS if any(m in table[s] for s in suites)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    bound = teachers(units)
    for ax, split in zip(axes, ("in", "out"), strict=True):
        series = {
            m: [spread(r.get(f"acc_{split}") for r in table[s].get(m, [])) for s in suites]
            for m in methods
        }
        _grouped_bars(ax, series)
        for j, suite in enumerate(suites):
            mean = spread(r.get(f"teacher_{split}") for r in bound.get(suite, []))[0]
            ax.hlines(mean, j - 0.45, j + 0.45, colors="black", linestyles="dashed")
        ax.set_xticks(range(len(suites)), suites)
        ax.set_title(f"accuracy, {split} split (dashed: in-context teacher)")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("accuracy, nothing in context unless retrieved")
    axes[1].legend(fontsize=8, loc="upper left", ncol=2)
    return _save(fig, path)


def _forgetting(units: Units, path: Path) -> Path | None:
    by_method = kinds_by_method(units)
    if not by_method:
        return None
    plt = _pyplot()
    kinds = sorted({k for m in by_method.values() for k in m})
    methods = [m for m in METHODS if m in by_method]
    fig, ax = plt.subplots(figsize=(11, 4))
    series = {m: [spread(by_method[m].get(k, [])) for k in kinds] for m in methods}
    _grouped_bars(ax, series)
    lowest = min((mean for stats in series.values() for mean, _, n in stats if n), default=0.5)
    ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(max(0.0, min(0.5, lowest - 0.1)), 1.02)
    ax.set_ylabel("robust retention (base = 1)")
    ax.set_title("forgetting per kind of general skill after one night")
    ax.legend(fontsize=8, ncol=len(methods), loc="lower left")
    return _save(fig, path)


def _sequential(units: Units, plan: dict[str, Any], path: Path) -> Path | None:
    table = sequential(units)
    skills = sequential_skills(units)
    if not table or not skills:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(table), figsize=(5 * len(table), 3.8), sharey=True)
    axes = axes if len(table) > 1 else [axes]
    for ax, (method, nights) in zip(axes, table.items(), strict=True):
        order = sorted(nights)
        for skill in skills:
            stats = [spread(r.get(f"acc_{skill}") for r in nights[n]) for n in order]
            ax.errorbar(
                order,
                [m for m, _, _ in stats],
                yerr=[sd for _, sd, _ in stats],
                marker="o",
                label=skill,
            )
        retention = [spread(r["retention"] for r in nights[n])[0] for n in order]
        ax.plot(order, retention, "k--", label="robust retention")
        names = ["base", *(f"+{s}" for s in skills)]
        ax.set_xticks(order, [names[n] if n < len(names) else str(n) for n in order])
        ax.set_title(f"{method}: accuracy after each night")
        ax.set_ylim(-0.02, 1.05)
    axes[0].set_ylabel("accuracy (in split, no context)")
    axes[-1].legend(fontsize=8)
    return _save(fig, path)


def _scaling(units: Units, path: Path) -> Path | None:
    table = scaling(units)
    if not table:
        return None
    plt = _pyplot()
    sizes = list(table)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, style in (
        ("acc_in", "weights (default), in", "o-"),
        ("acc_out", "weights (default), out", "o:"),
        ("text_acc_in", "text memory, in", "s-"),
        ("retention", "robust retention (weights)", "k--"),
    ):
        stats = [spread(r.get(key) for r in table[n]) for n in sizes]
        ax.errorbar(
            sizes, [m for m, _, _ in stats], yerr=[sd for _, sd, _ in stats], fmt=style, label=label
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("demonstrations consolidated in one night (fixed steps)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title("scaling")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _breakeven(units: Units, path: Path) -> Path | None:
    table = {s: r for s, r in cost(units).items() if r["prefill_saved_ms"] > 0}
    if not table:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    top = max(r["break_even_requests"] for r in table.values()) * 2
    requests = [top * i / 50 for i in range(51)]
    for suite, row in table.items():
        (line,) = ax.plot(
            requests,
            [n * row["prefill_saved_ms"] / 1000.0 for n in requests],
            label=f"{suite}: text memory's extra prefill",
        )
        ax.axhline(row["train_seconds"], color=line.get_color(), linestyle="--")
        ax.plot([row["break_even_requests"]], [row["train_seconds"]], "o", color=line.get_color())
    ax.set_xlabel("requests per night")
    ax.set_ylabel("seconds of compute per night")
    ax.set_title("break-even: a night's training (dashed) vs text memory")
    ax.legend(fontsize=8)
    return _save(fig, path)

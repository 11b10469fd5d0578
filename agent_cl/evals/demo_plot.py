"""The demo's one picture: what the agent knows without a note before the night, with text
memory, after the night, and what it kept (robust and full retention), from the report."""

from __future__ import annotations

from pathlib import Path

BARS = [
    ("before_acc", "before\n(no note)"),
    ("text_memory_acc", "text memory\n(top-k demos)"),
    ("teacher_acc", "note in context\n(teacher)"),
    ("after_acc", "after the night\n(no note)"),
]
RETENTION = [
    ("retention_before", "retention_after", "robust retention"),
    ("retention_full_before", "retention_full_after", "full retention"),
]


def plot_demo(report: dict, path: Path) -> Path:
    """Write the PNG; ImportError names the extra when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("the demo's plot needs matplotlib: pip install -e '.[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (skill, kept) = plt.subplots(1, 2, figsize=(10, 4), width_ratios=[2, 1])
    labels = [label for key, label in BARS if report.get(key) is not None]
    values = [report[key] for key, _ in BARS if report.get(key) is not None]
    bars = skill.bar(labels, values, color=["#999", "#6a9fd4", "#bbb", "#2a7f3f"][: len(values)])
    skill.bar_label(bars, fmt="%.2f")
    skill.set_ylim(0, 1.05)
    skill.set_ylabel("held-out accuracy")
    skill.set_title(f"new skill ({report.get('n_facts', '?')} facts, {report.get('method', '?')})")
    for i, (before, after, _) in enumerate(RETENTION):
        if report.get(before) is None or report.get(after) is None:
            continue
        for offset, key, color, name in (
            (-0.2, before, "#999", "before"),
            (0.2, after, "#2a7f3f", "after"),
        ):
            bar = kept.bar(
                i + offset, report[key], width=0.4, color=color, label=name if i == 0 else None
            )
            kept.bar_label(bar, fmt="%.3f", fontsize=8)
    kept.set_xticks([0, 1], [label for _, _, label in RETENTION])
    kept.legend(loc="lower right", fontsize=8)
    kept.set_ylim(0, 1.05)
    gate = "gate passed" if report.get("gate_passed") else f"gate: {report.get('gate_reason')}"
    kept.set_title(f"before / after the night ({gate})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

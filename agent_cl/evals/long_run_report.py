"""The long run's report.md and figures, from results.json alone (so `--report-only` and the
morning report can redraw them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent_cl.evals.long_run import final_line, summarise


def _keys(section: dict[str, Any]) -> list[str]:
    return sorted(section, key=int)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def build_report(data: dict[str, Any]) -> str:
    summary = data.get("summary") or summarise(data)
    nights, mornings, days = data["nights"], data["mornings"], data["days"]
    plan = data.get("plan", {})
    lines = [
        "# The long run: an agent's life of days and nights",
        "",
        f"Model `{data.get('model')}`; {plan.get('nights')} nights of "
        f"{plan.get('demos_per_night')} tasks ({', '.join(plan.get('kinds', []))}), each night "
        "the product's sleep job with the Settings defaults"
        + (
            f" ({plan['steps_per_demo']} steps per demonstration)"
            if plan.get("steps_per_demo")
            else ""
        )
        + (
            f", the gate's retention on a {plan['retention_limit']}-item sample"
            if plan.get("retention_limit")
            else ""
        )
        + ".",
    ]
    if data.get("command"):
        lines += ["", f"Made by `{data['command']}`."]
    lines += ["", f"`{final_line(summary)}`"]
    if summary.get("run_s") is not None:
        lines += ["", f"Days, nights and mornings took {summary['run_s'] / 60:.1f} minutes."]
    lines += ["", "## Nights", ""]
    lines += [
        "| night | logged by day | solved by the served agent (tools) | claimed | steps | "
        "seconds | gate | served | this night's skills | all skills | robust ret. (base) | "
        "KL from base |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in _keys(nights):
        night, morning = nights[key], mornings.get(key, {})
        tasks = days.get(key, {}).get("tasks", {})
        logged = sum(row["logged"] for row in tasks.values())
        asked = sum(row["asked"] for row in tasks.values())
        skills = morning.get("skills", {})
        own = skills.get("by_night", {}).get(key, {}).get("acc")
        retention = (morning.get("retention") or {}).get("robust")
        base = (morning.get("base") or {}).get("robust")
        gate = night["status"]
        share = published_share(night)
        if share is not None:
            gate += f" at {share:g} of its update"
        lines.append(
            f"| {key} | {logged}/{asked} | {_solved_by_day(tasks)} | "
            f"{night['demonstrations']} | {night['steps'] or 0} | "
            f"{night['seconds']:.0f} | {gate} | v{morning.get('served_version') or 0} | "
            f"{_pct(own)} | {_pct(skills.get('acc'))} | {_pct(retention)} ({_pct(base)}) | "
            f"{_kl(morning.get('kl_from_base'))} |"
        )
    rejected = [
        (k, n["gate"].get("reason")) for k, n in nights.items() if n["status"] != "published"
    ]
    if rejected:
        lines += ["", "Nights that did not publish:", ""]
        lines += [
            f"- night {k}: {reason}" for k, reason in sorted(rejected, key=lambda r: int(r[0]))
        ]
    if mornings:
        lines += _last_morning(mornings[max(mornings, key=int)])
    lines += _memory(mornings)
    return "\n".join(lines) + "\n"


def _solved_by_day(tasks: dict[str, dict[str, int]]) -> str:
    """What the app's own agent solved on the served model before any stronger model's run was
    logged, with tools apart: a skill the weights hold can still fail in the app (the
    middleware's few-shot turns once turned every tool call into prose)."""
    if not tasks or any("served_solved" not in row for row in tasks.values()):
        return "-"  # recorded before the day counted it

    def share(rows: list[dict[str, int]]) -> str:
        return f"{sum(r['served_solved'] for r in rows)}/{sum(r['asked'] for r in rows)}"

    tools = [row for name, row in tasks.items() if name.startswith("tools/")]
    return share(list(tasks.values())) + (f" ({share(tools)})" if tools else "")


def _kl(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _last_morning(last: dict[str, Any]) -> list[str]:
    skills = last["skills"]
    every = (last.get("skills_all_tasks") or skills)["by_night"]
    lines = [
        "",
        "## After the last night",
        "",
        "Skills are those the day logged a demonstration for; the last two columns count every "
        "task asked, the ones the agent failed by day (lost, as in an app) included.",
        "",
        "| skills of night | held-out acc | n | every task asked | n |",
        "|---|---|---|---|---|",
    ]
    for key in _keys(skills["by_night"]):
        row, all_row = skills["by_night"][key], every.get(key, {})
        lines.append(
            f"| {key} | {_pct(row['acc'])} | {row['n']} | {_pct(all_row.get('acc'))} | "
            f"{all_row.get('n', '-')} |"
        )
    lines += ["", "| kind | held-out acc | n |", "|---|---|---|"]
    for kind, row in skills["by_kind"].items():
        lines.append(f"| {kind} | {_pct(row['acc'])} | {row['n']} |")
    retention = last.get("retention") or {}
    base = last.get("base") or {}
    kinds = sorted(set(retention.get("kinds", {})) | set(base.get("kinds", {})))
    if kinds:
        lines += ["", "| retention kind | served | base |", "|---|---|---|"]
        for kind in kinds:
            served, was = retention["kinds"].get(kind), base.get("kinds", {}).get(kind)
            lines.append(f"| {kind} | {_pct(served)} | {_pct(was)} |")
    return lines


def _memory(mornings: dict[str, Any]) -> list[str]:
    rows = [k for k in _keys(mornings) if "text_memory" in mornings[k]]
    if not rows:
        return []
    lines = [
        "",
        "## The same questions with text memory",
        "",
        "Weights: the served model alone. Text memory: the base model with the top-2 "
        "demonstrations retrieved into the prompt. Agent: the served model with the agent's "
        "own retrieval (cosine >= 0.8).",
        "",
        "| morning | weights | text memory | agent (weights + own retrieval) |",
        "|---|---|---|---|",
    ]
    for key in rows:
        m = mornings[key]
        lines.append(
            f"| {key} | {_pct(m['skills']['acc'])} | {_pct(m['text_memory']['acc'])} | "
            f"{_pct(m['agent_retrieval']['acc'])} |"
        )
    return lines


def write_plots(data: dict[str, Any], out: Path) -> list[Path]:
    """skills.png (each night's skills over the mornings), retention.png (robust retention of
    the served model and the base), night_time.png (night seconds over demonstrations)."""
    mornings, nights = data["mornings"], data["nights"]
    if not mornings:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    keys = _keys(mornings)
    fig, ax = plt.subplots(figsize=(7, 4))
    for taught in keys:
        xs = [int(k) for k in keys if int(k) >= int(taught)]
        ys = [mornings[str(x)]["skills"]["by_night"].get(taught, {}).get("acc") for x in xs]
        ax.plot(xs, ys, marker="o", label=f"night {taught}" if len(keys) <= 8 else None)
    ax.axhline(0.7, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="morning after night", ylabel="held-out accuracy", ylim=(-0.05, 1.05))
    ax.set_title("Each night's skills over the following mornings")
    if len(keys) <= 8:
        ax.legend(fontsize=7)
    written.append(_save(fig, out / "skills.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [int(k) for k in keys if (mornings[k].get("retention") or {}).get("robust") is not None]
    served = [mornings[str(x)]["retention"]["robust"] for x in xs]
    base = [mornings[str(x)]["base"]["robust"] for x in xs]
    ax.plot(xs, served, marker="o", label="served model")
    ax.plot(xs, base, linestyle="--", label="base model")
    ax.plot(xs, [b - 0.03 for b in base], linestyle=":", color="grey", label="ceiling (base - 3)")
    ax.set(xlabel="morning after night", ylabel="robust retention")
    ax.set_title("Retention against the base")
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "retention.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(
        [n["demonstrations"] for n in nights.values()], [n["seconds"] for n in nights.values()]
    )
    ax.set(xlabel="demonstrations claimed", ylabel="night seconds (train + gate)")
    ax.set_title("Night time over demonstrations")
    written.append(_save(fig, out / "night_time.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def html_section(folder: Path, unreadable: list[str]) -> str | None:
    """The long run in `folder` as a section of the morning report (`agent-cl report
    --long-run`): its last line, its nights and its figures inline. A missing or damaged
    results.json is added to `unreadable` and gives no section."""
    import base64
    import html
    import tempfile

    from agent_cl.durable import CorruptFileError, read_json
    from agent_cl.evals.long_run import RESULTS

    path = Path(folder) / RESULTS
    try:
        data = read_json(path, fix="run the long run again, or point --long-run elsewhere")
    except FileNotFoundError:
        unreadable.append(f"{path}: no long-run results there")
        return None
    except (CorruptFileError, OSError) as exc:
        unreadable.append(str(exc))
        return None
    if not isinstance(data, dict) or data.get("experiment") != "long-run":
        unreadable.append(f"{path}: not a long run's results")
        return None
    summary = data.get("summary") or summarise(data)
    rows = []
    for key in _keys(data["nights"]):
        night, morning = data["nights"][key], data["mornings"].get(key, {})
        skills = morning.get("skills", {})
        cells = (
            key,
            night["demonstrations"],
            night["status"],
            f"{night['seconds']:.0f}",
            _pct(skills.get("by_night", {}).get(key, {}).get("acc")),
            _pct(skills.get("acc")),
            _pct((morning.get("retention") or {}).get("robust")),
            _kl(morning.get("kl_from_base")),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    with tempfile.TemporaryDirectory() as scratch:
        images = "".join(
            f'<img class="plot" alt="{p.stem}" src="data:image/png;base64,'
            f'{base64.b64encode(p.read_bytes()).decode()}">'
            for p in write_plots(data, Path(scratch))
        )
    return (
        '<section data-section="long-run"><h2>Long run</h2>'
        f"<p><code>{html.escape(final_line(summary))}</code></p>"
        "<table><tr><th>night</th><th>claimed</th><th>status</th><th>seconds</th>"
        "<th>its skills</th><th>all skills</th><th>robust retention</th><th>KL</th></tr>"
        f"{''.join(rows)}</table>{images}</section>"
    )


def published_share(night: dict[str, Any]) -> float | None:
    """The share of its update a night published when the gate shrank it (None: the whole),
    from its recorded tries, or from the gate's reason in runs that did not record them."""
    if night.get("status") != "published":
        return None
    gate = night.get("gate") or {}
    passed = [t["share"] for t in gate.get("shrink") or [] if t.get("passed")]
    if passed:
        return float(passed[0])
    match = re.match(r"at ([0-9.]+) of the night's update", gate.get("reason") or "")
    return float(match.group(1)) if match else None

"""The morning report: one self-contained HTML page over a home, for whoever runs the agent.

Per tenant: the nights (demonstrations, steps, duration, the gate's decision with every score
and its reason), the versions served and the rollbacks, robust and full retention over the
nights (the robust items are ones the base answers, so this is retention against the base),
what each night learned, what waits in the store, and what each server answers; for the home,
the next night. Plots are inline PNGs and the page loads nothing from the network. A file that
cannot be read is listed on the page, never a reason to fail the page.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_cl.adapters.registry import AdapterRegistry, registry_for
from agent_cl.adapters.rules import rules_for
from agent_cl.config import Settings, Tenant
from agent_cl.durable import CorruptFileError, LockedError
from agent_cl.night.reports import read_reports
from agent_cl.night.status import next_night, served_by_servers

SECTIONS = ("nights", "versions", "retention", "learned", "store", "servers")
# More of the page from outside the night (the CLI adds the long run's): given the list of
# unreadable files to add to, the HTML sections to append.
ExtraSections = Callable[[list[str]], list[str]]


@dataclass
class TenantMorning:
    tenant: str
    nights: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    versions: list[dict[str, Any]] = field(default_factory=list)
    current: str = "base"
    rollbacks: list[str] = field(default_factory=list)
    store: dict[str, int | str] = field(default_factory=dict)
    served: str = "-"


@dataclass
class Morning:
    home: str
    generated: str
    next_night: str
    tenants: list[TenantMorning]
    unreadable: list[str] = field(default_factory=list)


def collect(settings: Settings) -> Morning:
    """Everything the page shows, read from the home as it is now."""
    unreadable: list[str] = []
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for found in read_reports(settings.reports_dir):
        if found.data is None or not isinstance(found.data.get("tenant"), str):
            unreadable.append(f"{found.path.name}: {found.problem or 'no tenant'}")
            continue
        by_tenant.setdefault(found.data["tenant"], []).append(
            _night_row(found.finished, found.data)
        )
    counts = _store_counts(settings, unreadable)
    names = sorted({*settings.known_tenants(), *by_tenant, *counts})
    tenants = []
    rules = rules_for(settings)
    for name in names:
        # reports come newest first by file name (time, then run id): oldest first here
        morning = TenantMorning(name, nights=list(reversed(by_tenant.get(name, []))))
        morning.store = counts.get(name, {})
        _read_registry(registry_for(settings, Tenant(name), rules), morning, unreadable)
        if morning.nights or morning.versions or morning.store:  # the settings' own
            morning.served = served_by_servers(settings, name)  # tenant may be empty
            tenants.append(morning)
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return Morning(str(settings.home), generated, next_night(settings), tenants, unreadable)


def _night_row(finished: str, data: dict[str, Any]) -> dict[str, Any]:
    gate = data.get("gate") if isinstance(data.get("gate"), dict) else {}
    train = data.get("train") if isinstance(data.get("train"), dict) else {}
    before = gate.get("before") if isinstance(gate.get("before"), dict) else {}
    after = gate.get("after") if isinstance(gate.get("after"), dict) else {}
    return {
        "finished": finished,
        "status": data.get("status"),
        "version": data.get("adapter_version"),
        "demonstrations": data.get("demonstrations"),
        "steps": train.get("steps"),
        "seconds": data.get("seconds"),
        "passed": gate.get("passed"),
        "reason": gate.get("reason") or data.get("error") or "",
        "new_skill_before": before.get("new_skill"),
        "new_skill_after": after.get("new_skill"),
        "retention_after": after.get("retention"),
        "retention_full_after": after.get("retention_full"),
        "kl_from_base": after.get("kl_from_base"),
        "kinds_after": after.get("retention_kinds") or {},
    }


def _store_counts(settings: Settings, unreadable: list[str]) -> dict[str, dict[str, int | str]]:
    from agent_cl.memory.chroma import ChromaDemonstrationStore

    try:
        with ChromaDemonstrationStore.for_settings(settings) as store:
            found: dict[str, Counter] = {}
            for demo in store.list():
                found.setdefault(demo.tenant, Counter())[demo.status.value] += 1
            return {t: dict(c) for t, c in found.items()}
    except LockedError:
        return {t: {"store": "locked by another process"} for t in settings.known_tenants()}
    except CorruptFileError as exc:
        unreadable.append(str(exc))
        return {}


def _read_registry(
    registry: AdapterRegistry, morning: TenantMorning, unreadable: list[str]
) -> None:
    try:
        current = registry.current()
        versions = registry.versions()
    except CorruptFileError as exc:
        unreadable.append(str(exc))
        return
    morning.current = "base" if current is None else f"v{current.version}"
    for v in versions:
        published = v.manifest.get("published_at")
        morning.versions.append(
            {
                "version": v.version,
                "method": v.manifest.get("method", "?"),
                "demonstrations": len(v.manifest.get("demonstration_ids", [])),
                "published": time.strftime("%Y-%m-%d %H:%M", time.localtime(published))
                if isinstance(published, int | float)
                else "?",
            }
        )
    history = registry.history()
    for older, newer in itertools.pairwise(history):
        if (newer or 0) < (older or 0):
            morning.rollbacks.append(f"v{older} -> {'base' if newer is None else f'v{newer}'}")


def render(morning: Morning, extra: Sequence[str] = ()) -> str:
    """The page: plain HTML and CSS, plots as data URIs, one inline check that every section
    rendered (the browser test reads its verdict)."""
    parts = [
        f"<h1>agent-cl morning report</h1><p>home <code>{_e(morning.home)}</code>; generated "
        f"{_e(morning.generated)}; next night: {_e(morning.next_night)}</p>"
    ]
    if morning.unreadable:
        items = "".join(f"<li>{_e(u)}</li>" for u in morning.unreadable)
        parts.append(
            f'<section class="unreadable"><h2>Could not read</h2><ul>{items}</ul></section>'
        )
    if not morning.tenants:
        parts.append("<p>No tenants yet: nothing has been logged or published.</p>")
    parts += [_tenant_html(t) for t in morning.tenants]
    parts += extra
    return _PAGE.format(body="\n".join(parts), sections=",".join(SECTIONS))


def _tenant_html(t: TenantMorning) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(_fmt(n.get(k)))}</td>"
            for k in ("finished", "status", "version", "demonstrations", "steps", "seconds")
        )
        + f"<td>{_verdict(n)}</td><td>{_e(_scores(n))}</td></tr>"
        for n in t.nights
    )
    nights = (
        "<table><tr><th>finished</th><th>status</th><th>version</th><th>demos</th><th>steps</th>"
        f"<th>seconds</th><th>gate</th><th>scores after</th></tr>{rows}</table>"
        if t.nights
        else "<p>No nights yet.</p>"
    )
    versions = ", ".join(
        f"v{v['version']} ({_e(v['method'])}, {v['demonstrations']} demos, {_e(v['published'])})"
        for v in t.versions
    )
    rollbacks = ", ".join(t.rollbacks) or "none"
    store = ", ".join(f"{k} {v}" for k, v in sorted(t.store.items())) or "empty"
    return (
        f'<article class="tenant" id="tenant-{_e(t.tenant)}"><h2>{_e(t.tenant)}</h2>'
        f'<section data-section="nights"><h3>Nights</h3>{nights}</section>'
        f'<section data-section="versions"><h3>Versions</h3><p>serving {_e(t.current)}; '
        f"published: {versions or 'none'}; rollbacks: {_e(rollbacks)}</p></section>"
        f'<section data-section="retention"><h3>Retention against the base</h3>'
        f"{_plot_retention(t)}</section>"
        f'<section data-section="learned"><h3>Learned per night</h3>{_plot_learned(t)}</section>'
        f'<section data-section="store"><h3>Store</h3><p>{_e(store)}</p></section>'
        f'<section data-section="servers"><h3>Servers</h3><p>{_e(t.served)}</p></section>'
        "</article>"
    )


def _plot_retention(t: TenantMorning) -> str:
    gated = [n for n in t.nights if n["retention_after"] is not None]
    if not gated:
        return "<p>No gated night yet.</p>"

    def draw(ax) -> None:
        x = list(range(1, len(gated) + 1))
        served = [(i, n) for i, n in zip(x, gated, strict=True) if n["passed"]]
        refused = [(i, n) for i, n in zip(x, gated, strict=True) if not n["passed"]]
        ax.plot(
            [i for i, _ in served],
            [n["retention_after"] for _, n in served],
            "o-",
            label="robust (published)",
        )
        full = [(i, n["retention_full_after"]) for i, n in served if n["retention_full_after"]]
        if full:
            ax.plot(*zip(*full, strict=True), "s--", label="full (published)")
        if refused:
            ax.plot(
                [i for i, _ in refused],
                [n["retention_after"] for _, n in refused],
                "x",
                color="#b3261e",
                markersize=9,
                label="rejected candidate",
            )
        ax.axhline(0.97, color="grey", lw=0.8, ls=":", label="base - 3 points")
        ax.set(xlabel="night", ylabel="retention", ylim=(0, 1.05), xticks=x)
        ax.legend(loc="lower left", fontsize=7)

    return _figure(draw, f"retention over nights, {t.tenant}")


def _plot_learned(t: TenantMorning) -> str:
    scored = [n for n in t.nights if n["new_skill_after"] is not None]
    if not scored:
        return "<p>No scored night yet.</p>"

    def draw(ax) -> None:
        x = list(range(1, len(scored) + 1))
        ax.bar(
            [i - 0.2 for i in x],
            [n["new_skill_before"] or 0 for n in scored],
            0.4,
            label="before the night",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [n["new_skill_after"] for n in scored],
            0.4,
            label="after (the candidate)",
        )
        ax.set(xlabel="night", ylabel="new skill", ylim=(0, 1.05), xticks=x)
        ax.legend(loc="upper left")

    return _figure(draw, f"new skill per night, {t.tenant}")


def _figure(draw, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 2.8), dpi=90)
    try:
        draw(ax)
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img class="plot" alt="{_e(title)}" src="data:image/png;base64,{data}">'


def _verdict(night: dict[str, Any]) -> str:
    if night["passed"] is None:
        return _e(night["reason"] or "no gate")
    word = "passed" if night["passed"] else "rejected"
    return f'<span class="{word}">{word}</span> {_e(night["reason"])}'


def _scores(night: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in sorted(night["kinds_after"].items()))
    shown = [
        f"new {_fmt(night['new_skill_before'])} -> {_fmt(night['new_skill_after'])}",
        f"robust {_fmt(night['retention_after'])}",
        f"full {_fmt(night['retention_full_after'])}",
        f"KL {_fmt(night['kl_from_base'])}",
    ]
    return "; ".join(shown) + (f"; {kinds}" if kinds else "")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _e(text: Any) -> str:
    return html.escape(str(text))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agent-cl morning report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; font-size: 12px; text-align: left; }}
.passed {{ color: #176c2b; font-weight: bold; }} .rejected {{ color: #b3261e; font-weight: bold; }}
article.tenant {{ border-top: 2px solid #888; margin-top: 1.5em; }}
section.unreadable {{ background: #fff3cd; padding: .5em; }}
</style></head>
<body>
{body}
<script>
(function () {{
  var wanted = "{sections}".split(",");
  var tenants = document.querySelectorAll("article.tenant");
  var missing = [];
  tenants.forEach(function (t) {{
    wanted.forEach(function (s) {{
      if (!t.querySelector('[data-section="' + s + '"]')) missing.push(t.id + ":" + s);
    }});
  }});
  document.body.setAttribute("data-check", missing.length ? "missing " + missing : "ok");
}})();
</script>
</body></html>
"""


def page(settings: Settings, extra: ExtraSections | None = None) -> tuple[Morning, str]:
    """What the home shows now, and the page's HTML."""
    morning = collect(settings)
    sections = extra(morning.unreadable) if extra is not None else []
    return morning, render(morning, sections)


def write_page(settings: Settings, out, extra: ExtraSections | None = None) -> Morning:
    """Collect and render the page to `out` atomically; returns what it showed."""
    from pathlib import Path

    from agent_cl.durable import atomic_write_text

    morning, text = page(settings, extra)
    atomic_write_text(Path(out), text)
    return morning

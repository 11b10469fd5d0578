"""`agent-cl report`: the morning page over homes with no night, one night, many tenants, a
rejected night, a rollback and damaged files; and the page checked in a real headless Chromium
(every section present, the page's own check ran without a script error, a screenshot)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.cli import app
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.night.morning import SECTIONS
from agent_cl.night.reports import write_report
from tests.adapters import fake_adapter

runner = CliRunner()


def night(tenant: str, passed: bool, version: int | None, retention: float, new: float) -> dict:
    scores = {"n_new_skill": 8, "n_retention": 120, "retention_kinds": {"facts": retention}}
    return {
        "run_id": f"{tenant}-{version}-{passed}",
        "tenant": tenant,
        "status": "published" if passed else "rejected",
        "adapter_version": version if passed else None,
        "demonstrations": 8,
        "seconds": 300.5,
        "train": {"steps": 64},
        "gate": {
            "passed": passed,
            "reason": "new skill up, retention kept" if passed else "robust retention fell 4.2",
            "before": {**scores, "new_skill": 0.1, "retention": 1.0, "retention_full": 0.9},
            "after": {
                **scores,
                "new_skill": new,
                "retention": retention,
                "retention_full": retention - 0.05,
                "kl_from_base": 0.01,
            },
        },
    }


@pytest.fixture
def home(tmp_path, monkeypatch, hash_embedder) -> Path:
    """Two tenants: alpha with three nights (one rejected) and a rollback, beta with one."""
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_CL_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    reports = home / "reports"
    for report in (
        night("alpha", True, 1, 0.99, 0.8),
        night("alpha", False, None, 0.95, 0.9),
        night("alpha", True, 2, 0.98, 0.85),
        night("beta", True, 1, 1.0, 0.75),
    ):
        write_report(reports, report)
    alpha = AdapterRegistry(home / "adapters" / "alpha")
    for i in range(2):
        alpha.publish(fake_adapter(tmp_path / f"a{i}", str(i)), {"method": "sft_kl"})
    alpha.rollback(1)
    AdapterRegistry(home / "adapters" / "beta").publish(fake_adapter(tmp_path / "b", "b"))
    with ChromaDemonstrationStore.open(home / "store", embedder=hash_embedder) as store:
        ids = store.add(
            [Demonstration(query=f"q{i}?", answer="a.", tenant="alpha") for i in range(3)]
        )
        store.set_status(ids[:1], DemoStatus.CLAIMED, tenant="alpha")
    return home


def make_page(tmp_path, *extra: str) -> tuple[object, str]:
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["report", "--out", str(out), *extra])
    return result, out.read_text() if out.exists() else ""


def test_the_page_shows_every_tenant_night_decision_and_rollback(home, tmp_path):
    result, page = make_page(tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 tenants, 4 nights" in result.output
    for tenant in ("alpha", "beta"):
        assert f'id="tenant-{tenant}"' in page
    assert page.count('data-section="nights"') == 2
    assert all(f'data-section="{s}"' in page for s in SECTIONS)
    assert "robust retention fell 4.2" in page and 'class="rejected"' in page
    assert "rollbacks: v2 -&gt; v1" in page and "serving v1" in page
    assert "claimed 1" in page and "pending 2" in page
    assert page.count("data:image/png;base64,") == 4  # retention and learning, per tenant
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing from the network


def test_a_home_with_no_night_and_a_damaged_report(tmp_path, monkeypatch):
    home = tmp_path / "empty"
    monkeypatch.setenv("AGENT_CL_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (home / "reports").mkdir(parents=True)
    result, page = make_page(tmp_path)
    assert result.exit_code == 0 and "No tenants yet" in page
    (home / "reports" / "sleep-20260101T000000-x.json").write_text("{broken")
    result, page = make_page(tmp_path)
    assert result.exit_code == 0 and "could not read" in result.output
    assert "Could not read" in page and "sleep-20260101T000000-x.json" in page


def test_no_home_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_CL_HOME", str(tmp_path / "nowhere"))
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "p.html")])
    assert result.exit_code == 2 and "no agent-cl home" in result.output


def browser() -> str:
    found = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("needs Debian's chromium (apt-get install chromium); CI installs it")
    return found


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run(
        [browser(), *flags, *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_page_in_a_real_browser(home, tmp_path):
    result, _ = make_page(tmp_path)
    assert result.exit_code == 0, result.output
    page = tmp_path / "page.html"
    dom = chromium(page, tmp_path, "--dump-dom")
    assert 'data-check="ok"' in dom.stdout, dom.stdout[-2000:] + dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr, dom.stderr
    shot = tmp_path / "report.png"
    taken = chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400")
    assert shot.exists() and shot.stat().st_size > 10_000, taken.stderr[-2000:]


def test_the_browser_check_fails_when_a_section_is_missing(home, tmp_path):
    make_page(tmp_path)
    page = tmp_path / "page.html"
    page.write_text(page.read_text().replace('data-section="store"', 'data-section="gone"', 1))
    dom = chromium(page, tmp_path, "--dump-dom")
    assert 'data-check="missing tenant-alpha:store"' in dom.stdout, dom.stdout[-2000:]


def test_the_live_page_needs_the_key_when_one_is_set(home, monkeypatch):
    import threading

    import httpx

    from agent_cl.config import Settings
    from agent_cl.night.morning_server import report_server

    monkeypatch.setenv("AGENT_CL_VLLM_API_KEY", "k3y")
    server = report_server(Settings.load(), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        page = httpx.get(url, headers={"Authorization": "Bearer k3y"})
        assert page.status_code == 200 and 'id="tenant-alpha"' in page.text
    finally:
        server.shutdown()
        server.server_close()

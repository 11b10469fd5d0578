"""`benchmarks/security_check.py --quick` against a real keyed `agent-cl serve`: every probe of
a hostile client (no key, a wrong or malformed key, another tenant's names, loads from outside
the registry, a 50 MB body, the key in argv) must count 0, and its controls must pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_security_check_quick_counts_nothing(embedded_model_dir, tmp_path):
    out = tmp_path / "security.json"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/security_check.py",
            "--quick",
            "--out",
            str(out),
            "--model-dir",
            str(embedded_model_dir),
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    expected = (
        "unauthorized_ok=0 foreign_tenant_ok=0 outside_registry_loads=0 "
        "oversized_accepted=0 key_in_argv=0"
    )
    assert proc.returncode == 0 and last == expected, proc.stdout[-2000:] + proc.stderr[-4000:]

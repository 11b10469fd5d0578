"""Adapters load only from the registry: the check the alias middleware runs on every
`/v1/load_lora_adapter` before vLLM sees it.

A load names `agent-cl/<tenant>@vNNNN` and must come from exactly `<adapters root>/<tenant>/
vNNNN`, the registry's own version directory, resolved (no `..`, no symlink leading out), and
pass the same `AdapterRules` the registry applied at publish (rank <= the served maximum,
shapes of this base model, finite values, this base model's checksum). vLLM itself would load
any readable path, and some bad adapters only fail on the first request that uses them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from agent_cl.adapters.rules import AdapterRules
from agent_cl.adapters.validation import InvalidAdapterError

ADAPTERS_ROOT_ENV = "AGENT_CL_ADAPTERS_ROOT"
MAX_RANK_ENV = "AGENT_CL_MAX_LORA_RANK"
BASE_MODEL_ENV = "AGENT_CL_BASE_MODEL_DIR"
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSION_NAME = re.compile(r"^agent-cl/(?P<tenant>[A-Za-z0-9_-]{1,64})@v(?P<version>\d{4,})$")


class LoadGuard:
    def __init__(self, adapters_root: Path | None, rules: AdapterRules) -> None:
        self.adapters_root = Path(adapters_root).resolve() if adapters_root else None
        self.rules = rules

    @classmethod
    def from_environment(cls) -> LoadGuard:
        from agent_cl.models.provision import read_manifest

        base = os.environ.get(BASE_MODEL_ENV)
        rank = os.environ.get(MAX_RANK_ENV)
        sha = (read_manifest(Path(base)) or {}).get("weights_sha256") if base else None
        rules = AdapterRules(
            max_rank=int(rank) if rank else None,
            base_model_dir=Path(base) if base else None,
            base_model_sha256=sha,
        )
        root = os.environ.get(ADAPTERS_ROOT_ENV)
        return cls(Path(root) if root else None, rules)

    def refusal(self, body: Any) -> str | None:
        """Why this load must not happen, or None when it may."""
        if not isinstance(body, dict):
            return 'load_lora_adapter takes {"lora_name": ..., "lora_path": ...}'
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not isinstance(path, str) or not path:
            return "lora_name and lora_path must be non-empty strings"
        match = _VERSION_NAME.match(name)
        if match is None:
            return f"{name!r}: adapters load only as agent-cl/<tenant>@vNNNN"
        if self.adapters_root is None:
            return "this server was started without an adapter registry; loads are refused"
        tenant, version = match.group("tenant"), int(match.group("version"))
        expected = self.adapters_root / tenant / f"v{version:04d}"
        if Path(path).resolve() != expected:
            return f"{name} loads only from its registry directory {expected}"
        try:
            self.rules.check(expected)
        except InvalidAdapterError as exc:
            return str(exc)
        return None

    def weights_refusal(self, body: Any) -> str | None:
        """Why a merged-mode weight swap must not happen, or None when it may: the weights come
        from exactly the tenant's merged copy of that version (`<root>/<tenant>/merged/
        vNNNN`, made from this base model), or, for version None, the base model itself."""
        if not isinstance(body, dict):
            return 'weights takes {"tenant": ..., "version": N or null, "path": ...}'
        tenant, version, path = body.get("tenant"), body.get("version"), body.get("path")
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            return "tenant must be a tenant name"
        if version is not None and (not isinstance(version, int) or version < 1):
            return "version must be a positive integer or null (the base model)"
        if not isinstance(path, str) or not path:
            return "path must be a non-empty string"
        if version is None:
            expected = self.rules.base_model_dir
            if expected is None:
                return "this server does not know its base model; weight swaps are refused"
            expected = Path(expected).resolve()
        else:
            if self.adapters_root is None:
                return "this server was started without an adapter registry; swaps are refused"
            expected = self.adapters_root / tenant / "merged" / f"v{version:04d}"
        if Path(path).resolve() != expected:
            return f"v{version} of {tenant} loads only from {expected}"
        if not all((expected / name).is_file() for name in ("model.safetensors", "config.json")):
            return f"{expected} is not a complete model directory"
        if version is not None and self.rules.base_model_sha256:
            from agent_cl.models.provision import read_manifest

            parent = (read_manifest(expected) or {}).get("parent_weights_sha256")
            if parent != self.rules.base_model_sha256:
                return f"{expected} was not merged from this server's base model"
        return None

"""Who may call what on the served model: the policy the alias middleware enforces inside vLLM.

An allowlist, not a denylist: vLLM mounts more routes than agent-cl uses (`/invocations`,
`/adapters` with runtime LoRA on, ...), and its own key check covers only some prefixes, so a
keyed server answered chat on `/invocations` without the key (measured). Here every route
agent-cl does not use is refused, whatever the key, and every other one except health needs a
key once any key is configured.

Two kinds of key: the admin key (aliases, adapter loads and unloads; what a night's swap and
`agent-cl serve` hold) and inference keys, each scoped to tenants, that may only ask for those
tenants' model names (`agent-cl/<tenant>` and `agent-cl/<tenant>@vN`) and the base model.
Without any key the server binds loopback only (VLLMServerConfig) and admin routes answer
loopback callers only.

It runs inside the vLLM process: standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

ADMIN_KEY_ENV = "AGENT_CL_ADMIN_KEY"  # set by VLLMServer in the child's environment
INFERENCE_KEYS_ENV = "AGENT_CL_INFERENCE_KEYS_FILE"
MAX_BODY_ENV = "AGENT_CL_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 1 << 20  # a 2,048-token conversation is ~10 kB of JSON
ALIASES_PATH = "/v1/agent-cl/aliases"
WEIGHTS_PATH = "/v1/agent-cl/weights"  # merged mode: swap the served weights (admin)
BASE_NAME = "agent-cl-base"
_TENANT_NAME = re.compile(r"^agent-cl/(?P<tenant>[A-Za-z0-9_-]{1,64})(@v\d{4,})?$")


class Role(Enum):
    PUBLIC = "public"  # health: load balancers probe it without a key
    INFERENCE = "inference"
    ADMIN = "admin"


ROUTES: dict[tuple[str, str], Role] = {
    ("GET", "/health"): Role.PUBLIC,
    ("GET", "/ping"): Role.PUBLIC,
    ("POST", "/v1/chat/completions"): Role.INFERENCE,
    ("POST", "/v1/completions"): Role.INFERENCE,
    ("GET", "/v1/models"): Role.INFERENCE,
    ("GET", ALIASES_PATH): Role.INFERENCE,
    ("PUT", ALIASES_PATH): Role.ADMIN,
    ("PUT", WEIGHTS_PATH): Role.ADMIN,
    ("POST", "/v1/load_lora_adapter"): Role.ADMIN,
    ("POST", "/v1/unload_lora_adapter"): Role.ADMIN,
}


@dataclass(frozen=True)
class Caller:
    """Who is calling: an admin, or an inference caller limited to `tenants` (None: all)."""

    admin: bool
    tenants: frozenset[str] | None = None

    def may_use(self, model: str) -> bool:
        """Whether this caller may address `model` (a stable, versioned or base name)."""
        if self.admin or self.tenants is None or model == BASE_NAME:
            return True
        match = _TENANT_NAME.match(model)
        return match is not None and match.group("tenant") in self.tenants

    def tenant_of(self, model: str) -> str | None:
        match = _TENANT_NAME.match(model)
        return match.group("tenant") if match else None


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


class AccessPolicy:
    def __init__(
        self,
        admin_key: str | None = None,
        inference_keys: dict[str, frozenset[str]] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._admin = _digest(admin_key) if admin_key else None
        self._inference = {_digest(k): t for k, t in (inference_keys or {}).items()}
        self.max_body = max_body

    @classmethod
    def from_environment(cls) -> AccessPolicy:
        keys_file = os.environ.get(INFERENCE_KEYS_ENV)
        return cls(
            os.environ.get(ADMIN_KEY_ENV) or None,
            read_inference_keys(Path(keys_file)) if keys_file else None,
            int(os.environ.get(MAX_BODY_ENV) or DEFAULT_MAX_BODY),
        )

    @property
    def keyed(self) -> bool:
        return self._admin is not None or bool(self._inference)

    def authorize(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], client: str
    ) -> Caller | Refusal:
        """The caller, or why the request is refused (checked before any body is read)."""
        role = ROUTES.get((method, path))
        if role is None:
            if any(p == path for _, p in ROUTES):
                return Refusal(405, f"{method} is not allowed on {path}")
            return Refusal(404, f"{path} is not a route agent-cl serves")
        length = _header(headers, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return Refusal(413, f"request bodies are limited to {self.max_body} bytes")
        if role is Role.PUBLIC:
            return Caller(admin=False)
        if not self.keyed:
            if role is Role.ADMIN and not is_loopback(client):
                return Refusal(403, "without an API key, admin routes answer this machine only")
            return Caller(admin=role is Role.ADMIN)
        caller = self._caller(headers)
        if caller is None:
            return Refusal(401, "this route needs an API key (Authorization: Bearer ...)")
        if role is Role.ADMIN and not caller.admin:
            return Refusal(403, "this route needs the admin key, not an inference key")
        return caller

    def _caller(self, headers: list[tuple[bytes, bytes]]) -> Caller | None:
        raw = _header(headers, b"authorization")
        if raw is None:
            return None
        scheme, _, token = raw.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        digest = _digest(token.strip())
        if self._admin is not None and hmac.compare_digest(digest, self._admin):
            return Caller(admin=True)
        for known, tenants in self._inference.items():
            if hmac.compare_digest(digest, known):
                return Caller(admin=False, tenants=tenants)
        return None


def read_inference_keys(path: Path) -> dict[str, frozenset[str]]:
    """`{"<key>": ["tenant", ...], ...}` from a JSON file (keep it chmod 600); ValueError
    naming the file and the problem otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"inference keys file {path} unreadable: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ValueError(f'inference keys file {path} must be {{"<key>": ["tenant", ...]}}')
    keys = {}
    for key, tenants in data.items():
        names = tenants if isinstance(tenants, list) else None
        if not key or names is None or not all(_TENANT_NAME.match(f"agent-cl/{t}") for t in names):
            raise ValueError(f"inference keys file {path}: each key maps to a list of tenants")
        keys[key] = frozenset(names)
    return keys


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """A header as text; a value that is not ASCII reads as absent (a client error, not a 500)."""
    for key, value in headers:
        if key.lower() == name:
            try:
                return value.decode("ascii").strip()
            except UnicodeDecodeError:
                return None
    return None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

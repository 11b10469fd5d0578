"""The agent graph as `langgraph dev` / LangGraph Platform loads it (see langgraph.json).

Built from `Settings` (agent-cl.toml, AGENT_CL_* env vars): the provisioned model served
in-process, the Chroma store in the data dir, and the registry's current adapter.
"""

from __future__ import annotations

from agent_cl.adapters.registry import registry_for
from agent_cl.config import Settings
from agent_cl.graphs.agent import build_agent
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.models.provision import resolve_model_dir
from agent_cl.serving.backend import AdapterLoadError
from agent_cl.serving.chat_model import BackendChatModel
from agent_cl.serving.local_backend import LocalBackend


def make_graph():
    """The factory langgraph.json names: settings come from the environment."""
    return build_default_agent(Settings.load())


def build_default_agent(settings: Settings):
    registry = registry_for(settings)
    backend = LocalBackend(
        resolve_model_dir(settings.model_dir, settings.models_dir),
        torch_threads=settings.torch_threads,
        rules=registry.rules,
    )
    current = registry.current()
    if current is not None:
        try:
            backend.swap(current.version, current.path)
        except AdapterLoadError as exc:  # damaged on disk since it was published
            raise AdapterLoadError(
                f"the current adapter v{current.version} cannot be served ({exc}); run "
                "`agent-cl adapters repair`, or `agent-cl adapters rollback`"
            ) from exc
    store = ChromaDemonstrationStore.for_settings(settings)
    return build_agent(BackendChatModel(backend=backend), store, tenant=settings.tenant)

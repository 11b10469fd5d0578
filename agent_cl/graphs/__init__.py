"""LangGraph agents composed from memory (demonstrations) and serving (a chat model)."""

from agent_cl.graphs.agent import build_agent, demonstration_turns, task_messages
from agent_cl.graphs.state import AgentState

__all__ = ["AgentState", "build_agent", "demonstration_turns", "task_messages"]

"""Consolidation: moving demonstrated skills from context into a LoRA adapter.

`consolidation` reads demonstrations through the memory API and writes adapters through the
registry; it never talks to a server (the sleep job is handed a callback for that).
"""

from agent_cl.consolidation.training_config import ConsolidationConfig

__all__ = ["ConsolidationConfig"]

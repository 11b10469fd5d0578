"""Demonstrations: the schema, the store protocol and its backends (in-memory, Chroma).

This package knows Chroma and nothing of training; `consolidation` reads demonstrations only
through `DemonstrationStore`.
"""

from agent_cl.memory.base import DemonstrationStore, ScoredDemonstration
from agent_cl.memory.schema import Demonstration, DemoStatus

__all__ = ["DemoStatus", "Demonstration", "DemonstrationStore", "ScoredDemonstration"]

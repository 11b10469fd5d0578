"""agent-cl: a LangGraph agent that gets better overnight.

By day, successful episodes are logged as demonstrations in Chroma and retrieved in context;
by night, a sleep job consolidates them into a LoRA adapter with self-distillation (SDFT) and
hot-swaps the served model. Heavy dependencies (torch, transformers, chromadb) are imported
by the submodules that need them, so `import agent_cl` stays cheap.
"""

__version__ = "0.1.0"

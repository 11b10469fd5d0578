"""What counts as a right answer, and what the model must not forget.

This package sits below every part that judges answers: the agent's verifier (`graphs`), the
sleep job's gate (`consolidation`) and the experiment harness (`evals`) all score through it,
so a "correct" answer means the same thing by day, at night and in a report. It imports
nothing from the rest of agent-cl except `models.chat`'s message types.
"""

from agent_cl.scoring.matching import answer_matches, contains_answer
from agent_cl.scoring.retention import (
    RetentionItem,
    kind_scores,
    load_kl_prompts,
    load_retention_set,
    score,
)

__all__ = [
    "RetentionItem",
    "answer_matches",
    "contains_answer",
    "kind_scores",
    "load_kl_prompts",
    "load_retention_set",
    "score",
]

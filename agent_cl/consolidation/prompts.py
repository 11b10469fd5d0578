"""Student and teacher prompts for one demonstration.

The student sees what the agent will see tomorrow: the bare query. The teacher sees the
demonstration too. Measured on the embedded model (invented facts): the note before the
question as one user message ("context") lifted accuracy from 0/40 to 38/40; the demonstrated
Q/A as an earlier turn ("turns") to 34/40.
"""

from __future__ import annotations

from agent_cl.consolidation.trajectories import episode_conversation, prompt_messages, run_turns
from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import ChatMessage, task_message


def student_messages(demo: Demonstration) -> list[ChatMessage]:
    """The bare query; for one turn of a trajectory, the run up to that turn."""
    return prompt_messages(demo)


def teacher_messages(demo: Demonstration, mode: str = "context") -> list[ChatMessage]:
    use_context = "context" in mode and bool(demo.context.strip())
    use_turns = "turns" in mode or not use_context  # a demo without a note still teaches
    messages: list[ChatMessage] = []
    if use_turns:
        messages += [
            {"role": "user", "content": demo.query},
            {"role": "assistant", "content": demo.answer},
        ]
    if demo.messages:  # a trajectory's turn: the demonstration, then the run so far
        return episode_conversation(demo, messages + run_turns(demo))
    question = task_message(demo.query, demo.context if use_context else None)
    messages.append({"role": "user", "content": question})
    return episode_conversation(demo, messages)

"""More questions per demonstration, written and answered by the in-context teacher.

One demonstration teaches one phrasing; tomorrow's users ask in others. The model itself writes
new questions about the demonstration's note (sampled), then answers each with the note in
context (greedy: the in-context teacher). A pair is kept only when the answer carries the
verified expected answer, the question does not give it away, and the question is none of the
excluded ones (the gate's held-out paraphrases must never leak into training). Measured on the
135M model: most written questions are off the point, so several candidates are drawn per kept
one; the filter, not the writer, guarantees quality.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import ChatMessage, task_message
from agent_cl.scoring.matching import answer_matches

# (conversations, temperature, max_new_tokens) -> answers
Generate = Callable[[list[list[ChatMessage]], float, int], list[str]]

QUESTION_PROMPT = (
    "Here is a fact: {note}\n\nWrite a quiz question about this fact and give the answer.\n"
    "Question:"
)


def normalise_question(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def extract_question(text: str) -> str | None:
    """The first question the writer produced, or None when it wrote none."""
    text = re.sub(r"^\s*(question\s*:)?\s*", "", text, flags=re.IGNORECASE)
    match = re.search(r"[^?\n]{8,200}\?", text)
    if match is None:
        return None
    return re.sub(r"^\s*(question\s*:)\s*", "", match.group(0).strip(), flags=re.IGNORECASE)


def teacher_augment(
    demonstrations: Sequence[Demonstration],
    generate: Generate,
    *,
    per_demo: int,
    candidates_per_demo: int,
    exclude: Iterable[str] = (),
    temperature: float = 0.8,
) -> list[Demonstration]:
    """Up to `per_demo` new verified demonstrations per demonstration with an expected answer."""
    if per_demo < 1 or candidates_per_demo < per_demo:
        raise ValueError("need per_demo >= 1 and candidates_per_demo >= per_demo")
    eligible = [d for d in demonstrations if str(d.metadata.get("expected", "")).strip()]
    if not eligible:
        return []
    banned = {normalise_question(q) for q in exclude}
    banned |= {normalise_question(d.query) for d in demonstrations}
    writer_convs = [
        [{"role": "user", "content": QUESTION_PROMPT.format(note=d.context or d.answer)}]
        for d in eligible
        for _ in range(candidates_per_demo)
    ]
    written = generate(writer_convs, temperature, 48)
    proposals: list[tuple[Demonstration, str]] = []
    for k, text in enumerate(written):
        demo = eligible[k // candidates_per_demo]
        question = extract_question(text)
        if question is None or answer_matches(question, str(demo.metadata["expected"])):
            continue
        key = normalise_question(question)
        if key in banned:
            continue
        banned.add(key)
        proposals.append((demo, question))
    answer_convs = [
        [{"role": "user", "content": task_message(q, d.context or None)}] for d, q in proposals
    ]
    answers = generate(answer_convs, 0.0, 48) if answer_convs else []
    kept: dict[str, list[Demonstration]] = {}
    for (demo, question), answer in zip(proposals, answers, strict=True):
        expected = str(demo.metadata["expected"])
        bucket = kept.setdefault(demo.id, [])
        if len(bucket) < per_demo and answer.strip() and answer_matches(answer, expected):
            bucket.append(
                demo.model_copy(
                    update={
                        "query": question,
                        "answer": answer.strip(),
                        "metadata": {**demo.metadata, "augmented_from": demo.id},
                    }
                )
            )
    return [d for bucket in kept.values() for d in bucket]

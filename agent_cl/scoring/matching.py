"""Answer matching shared by verifiers, the gate and the evaluations."""

from __future__ import annotations

import re


def answer_matches(response: str, expected: str) -> bool:
    """Exact answer string present, ignoring case, punctuation and spacing.

    A substring test on purpose: a demonstration's expected answer is a name or a number the
    model must reproduce somewhere in its sentence.
    """
    return bool(expected.strip()) and _normalise(expected) in _normalise(response)


def contains_answer(response: str, answer: str) -> bool:
    """`answer` appears as a word (a number not inside a longer number; text at a word start).

    Stricter than `answer_matches` for the retention set, where short answers ("O", "ja", "6")
    would otherwise be found inside unrelated words or numbers and score a wrong answer right.
    Only the start of a word is anchored, so "butterfl" still matches "butterflies"; answers of
    one or two characters ("O", "Au") must be a whole word. An answer
    in capitals ("YES", "APPLE") must appear in capitals: writing it so is the instruction.
    """
    if answer.isdigit():
        return re.search(rf"(?<![\d.]){re.escape(answer)}(?!\d)", response) is not None
    if len(answer) > 1 and answer.isupper():
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(answer)}", response) is not None
    needle = _normalise(answer)
    end = "(?: |$)" if len(needle) <= 2 else ""
    pattern = rf"(?:^| ){re.escape(needle)}{end}"
    return bool(needle) and re.search(pattern, _normalise(response)) is not None


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())

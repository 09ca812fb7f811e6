"""The model's reply read as an `LLMAnswer`, or the reason it cannot be used.

The reason is phrased for the model itself (it goes into the repair turn): field names and
constraint messages from our own schema, never text quoted from the reply.

An answer whose text repeats our instructions (a run of `ECHO_WORDS` words of the system
prompt, or one of the fence markers) is not used either: it is what a model does when a note
tells it to print its prompt, and the prompt must not reach the client.
"""

from __future__ import annotations

import json
import re
from typing import Final

from pydantic import ValidationError

from sepsis_genai.narrative import (
    HISTORY_BEGIN,
    HISTORY_END,
    NOTES_BEGIN,
    NOTES_END,
    REPAIR_PROMPT,
    SYSTEM_PROMPT,
)
from sepsis_genai.schemas import LLMAnswer

ECHO_WORDS: Final = 10
_WORD = re.compile(r"[a-z0-9]+")
_MARKERS: Final = tuple(
    " ".join(_WORD.findall(m.lower())) for m in (NOTES_BEGIN, NOTES_END, HISTORY_BEGIN, HISTORY_END)
)


def _runs(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)}


_INSTRUCTION_RUNS: Final = _runs(SYSTEM_PROMPT) | _runs(REPAIR_PROMPT)


def echoes_instructions(answer: LLMAnswer) -> bool:
    """Whether the answer's text repeats the instructions or a fence marker."""
    text = " ".join([answer.rationale, *answer.key_findings, *answer.recommended_actions])
    words = " ".join(_WORD.findall(text.lower()))
    return any(marker in words for marker in _MARKERS) or not _runs(text).isdisjoint(
        _INSTRUCTION_RUNS
    )


class InvalidAnswer(Exception):
    """The answer could not be used; `problem` is safe to show the model."""

    def __init__(self, problem: str, content: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.content = content


def _strip_fences(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def parse_answer(content: str) -> LLMAnswer:
    """The validated answer in a reply (a Markdown code fence around it is tolerated)."""
    text = _strip_fences(content)
    if not text:
        raise InvalidAnswer("the answer was empty", content)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidAnswer("the answer was not valid JSON", content) from None
    if not isinstance(data, dict):
        raise InvalidAnswer("the answer was not a JSON object", content)
    try:
        answer = LLMAnswer.model_validate(data)
    except ValidationError as exc:
        # Field names and constraint messages only; they come from our schema, not from input.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:6]
        )
        raise InvalidAnswer(f"fields out of the schema ({problems})", content) from None
    if echoes_instructions(answer):
        raise InvalidAnswer(
            "the answer repeated the instructions instead of assessing the patient", content
        )
    return answer

"""The model's reply read as an `LLMAnswer`, or the reason it cannot be used.

The reason is phrased for the model itself (it goes into the repair turn): field names and
constraint messages from our own schema, never text quoted from the reply.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from sepsis_genai.schemas import LLMAnswer


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
        return LLMAnswer.model_validate(data)
    except ValidationError as exc:
        # Field names and constraint messages only; they come from our schema, not from input.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:6]
        )
        raise InvalidAnswer(f"fields out of the schema ({problems})", content) from None

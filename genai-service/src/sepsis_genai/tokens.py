"""What the LLM costs: tokens per call as the server reports them, and the daily budget.

Every completion's `usage` (prompt and completion tokens) is added to the call that made it,
repair turns and cut answers included: the server bills them all. The daily budget counts
those tokens per UTC day on this instance; once a day's tokens reach it, new assessments are
answered by the offline rules until the day ends (calls already in flight finish, so a day may
end a few calls past the budget). With several instances, each keeps its own count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens the LLM server reported (0 when no call was made)."""

    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.prompt + other.prompt, self.completion + other.completion)


NO_TOKENS: Final = TokenUsage()

Today = Callable[[], date]


def _utc_today() -> date:
    return datetime.now(UTC).date()


class TokenBudget:
    """Tokens used per UTC day against an optional daily limit (None: no limit)."""

    def __init__(self, daily_limit: int | None, *, today: Today = _utc_today) -> None:
        self.daily_limit = daily_limit
        self._today = today
        self._day = today()
        self._used = 0
        self.offline_answers = 0
        """Assessments answered offline because a day's budget was used up (since start)."""

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day, self._used = day, 0

    @property
    def used_today(self) -> int:
        self._roll()
        return self._used

    @property
    def exhausted(self) -> bool:
        """True once today's tokens reached the limit."""
        return self.daily_limit is not None and self.used_today >= self.daily_limit

    def record(self, usage: TokenUsage) -> None:
        self._roll()
        self._used += usage.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "daily_limit": self.daily_limit,
            "used_today": self.used_today,
            "day": self._day.isoformat(),
            "exhausted": self.exhausted,
            "offline_answers": self.offline_answers,
        }

"""What clinicians did with the cards: CDS Hooks feedback, stored in Redis and summarised.

Alert fatigue is what switched earlier sepsis tools off; a site sees it coming here. Each card
the service issues is recorded with its priority (for `CDS_FEEDBACK_TTL_S`); each feedback
entry (`accepted` or `overridden`, with the override reason) is counted under the priority of
its card, once: a client may send the same feedback more than once (the specification allows
it), so an entry is keyed by card, outcome and time and counted the first time only. Feedback
about a card this service has no record of (expired, or issued while Redis was unreachable) is
counted under `unknown`. The feedback figures hold nothing about the patient: card ids,
priorities, outcomes, reason codes and counts. The one exception is the full assessment a
card links to, kept under a random link id for `CDS_ASSESSMENT_TTL_S` (default an hour) and
then gone.

`summary()` gives, per priority, cards issued, feedback received, accepted and overridden
counts, acceptance and override rates (of the feedback received) and the override reasons.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

PRIORITIES = ("Critical", "Urgent", "Elevated")


class Coding(BaseModel):
    model_config = ConfigDict(extra="allow")

    system: str = Field(min_length=1, max_length=500)
    code: str = Field(min_length=1, max_length=200)
    display: str | None = Field(default=None, max_length=500)


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=2000)  # the specification's name


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)


class FeedbackEntry(BaseModel):
    """One entry of a CDS Hooks feedback request."""

    model_config = ConfigDict(extra="allow")

    card: str = Field(min_length=1, max_length=200, description="The card's `uuid`.")
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None  # the specification's name
    overrideReason: OverrideReason | None = None  # the specification's name
    outcomeTimestamp: AwareDatetime  # the specification's name

    @model_validator(mode="after")
    def _accepted_names_its_suggestions(self) -> FeedbackEntry:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required for an accepted outcome")
        return self


class FeedbackRequest(BaseModel):
    """`POST /cds-services/{id}/feedback`."""

    model_config = ConfigDict(extra="allow")

    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=500)


class FeedbackStore:
    """Card priorities and feedback counts in Redis under `namespace`."""

    def __init__(self, client: Any, *, namespace: str, ttl_s: int) -> None:
        self.client = client
        self.ns = namespace
        self.ttl_s = ttl_s

    async def card_issued(self, card: str, priority: str) -> None:
        """Remember which priority a card had, and count it."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(f"{self.ns}:card:{card}", priority, ex=self.ttl_s)
            pipe.hincrby(f"{self.ns}:cards", priority, 1)
            await pipe.execute()

    async def keep_assessment(self, link: str, assessment: Mapping[str, Any], ttl_s: int) -> None:
        """The full assessment behind a card's link, for `ttl_s` seconds."""
        await self.client.set(f"{self.ns}:assessment:{link}", json.dumps(assessment), ex=ttl_s)

    async def assessment(self, link: str) -> dict[str, Any] | None:
        """The assessment behind a card's link, None once expired or unknown."""
        raw = await self.client.get(f"{self.ns}:assessment:{link}")
        if raw is None:
            return None
        found: dict[str, Any] = json.loads(raw)
        return found

    async def record(self, entries: list[FeedbackEntry]) -> dict[str, Any]:
        """Count each new entry; the answer says how many were new, repeated, or about cards
        this service has no record of."""
        recorded = duplicates = 0
        unknown: list[str] = []
        for entry in entries:
            stamp = entry.outcomeTimestamp.isoformat()
            key = hashlib.sha256(f"{entry.card}\x00{entry.outcome}\x00{stamp}".encode()).hexdigest()
            fresh = await self.client.set(f"{self.ns}:fb:{key}", b"1", nx=True, ex=self.ttl_s)
            if not fresh:
                duplicates += 1
                continue
            raw = await self.client.get(f"{self.ns}:card:{entry.card}")
            priority = raw.decode() if isinstance(raw, bytes) else (raw or "unknown")
            if priority == "unknown":
                unknown.append(entry.card)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hincrby(f"{self.ns}:feedback:{priority}", entry.outcome, 1)
                if entry.outcome == "overridden":
                    reason = entry.overrideReason.reason if entry.overrideReason else None
                    code = f"{reason.system}|{reason.code}" if reason else "(no reason given)"
                    pipe.hincrby(f"{self.ns}:overrides:{priority}", code, 1)
                await pipe.execute()
            recorded += 1
        return {"recorded": recorded, "duplicates": duplicates, "unknown_cards": unknown}

    async def summary(self) -> dict[str, Any]:
        """Acceptance and override figures per priority, and over all cards."""
        issued = await self.client.hgetall(f"{self.ns}:cards")
        issued = {_text(k): int(v) for k, v in issued.items()}
        out: dict[str, Any] = {}
        total = {"cards": 0, "accepted": 0, "overridden": 0}
        for priority in (*PRIORITIES, "unknown"):
            counts = await self.client.hgetall(f"{self.ns}:feedback:{priority}")
            counts = {_text(k): int(v) for k, v in counts.items()}
            reasons = await self.client.hgetall(f"{self.ns}:overrides:{priority}")
            accepted, overridden = counts.get("accepted", 0), counts.get("overridden", 0)
            cards = issued.get(priority, 0)
            if priority == "unknown" and not (accepted or overridden):
                continue
            answered = accepted + overridden
            out[priority] = {
                "cards": cards,
                "feedback": answered,
                "accepted": accepted,
                "overridden": overridden,
                "acceptance_rate": round(accepted / answered, 4) if answered else None,
                "override_rate": round(overridden / answered, 4) if answered else None,
                "override_reasons": {_text(k): int(v) for k, v in reasons.items()},
            }
            total["cards"] += cards
            total["accepted"] += accepted
            total["overridden"] += overridden
        answered = total["accepted"] + total["overridden"]
        return {
            "status": "available",
            "per_priority": out,
            "totals": {
                **total,
                "feedback": answered,
                "acceptance_rate": round(total["accepted"] / answered, 4) if answered else None,
                "override_rate": round(total["overridden"] / answered, 4) if answered else None,
            },
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

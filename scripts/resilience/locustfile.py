"""The locust users of the report's load and soak runs (run by locust, never imported by the
report itself: locust patches the standard library with gevent as it loads).

Settings come from the environment the report passes:
    RESILIENCE_API_KEY     the client key
    RESILIENCE_MIX         `classify` (/classify alone) or `mix` (the realistic mix)
    RESILIENCE_HIT_RATE    share of /genai-classify calls for a patient already cached (0-1)
    RESILIENCE_WARM        how many warm (cached) GenAI patients there are
    RESILIENCE_USER_RPS    requests per second per user; 0: as fast as answers come
    RESILIENCE_COUNTS      where to write the GenAI cache hits seen, as JSON, at the end
    RESILIENCE_USERS       how many users, all started at once
    RESILIENCE_RUN_S       how long the run lasts, from its first tick

The length is kept by a load shape rather than --run-time: locust's run-time timer is armed on
gevent's loop clock, which still stands where the interpreter's start-up left it, so a short
run ended seconds early.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from locust import FastHttpUser, LoadTestShape, TaskSet, constant, constant_throughput, events

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

KEY = os.environ.get("RESILIENCE_API_KEY", "")
MIX = os.environ.get("RESILIENCE_MIX", "mix")
HIT_RATE = float(os.environ.get("RESILIENCE_HIT_RATE", "0.8"))
WARM = int(os.environ.get("RESILIENCE_WARM", "20"))
USER_RPS = float(os.environ.get("RESILIENCE_USER_RPS", "0"))
COUNTS_PATH = os.environ.get("RESILIENCE_COUNTS", "")
USERS = int(os.environ.get("RESILIENCE_USERS", "1"))
RUN_S = float(os.environ.get("RESILIENCE_RUN_S", "10"))
CLASSIFY = json.dumps(FLAT_EXAMPLE)
BATCH = json.dumps({"patients": [FLAT_EXAMPLE] * 10})
SEEN: Counter[str] = Counter()


def warm_patient(i: int) -> dict[str, Any]:
    """The GenAI patients the report sends once before the run (so they are cached)."""
    return dict(STRUCTURED_EXAMPLE) | {"notes": f"{STRUCTURED_EXAMPLE['notes']}; warm {i}"}


def classify(user: Clinician) -> None:
    user.client.post("/classify", data=CLASSIFY, headers=user.headers)


def classify_batch(user: Clinician) -> None:
    user.client.post("/classify-batch", data=BATCH, headers=user.headers)


def genai_classify(user: Clinician) -> None:
    if random.random() < HIT_RATE:
        body = warm_patient(random.randrange(WARM))
    else:
        body = dict(STRUCTURED_EXAMPLE) | {"notes": f"round {uuid.uuid4().hex}"}
    with user.client.post(
        "/genai-classify", data=json.dumps(body), headers=user.headers, catch_response=True
    ) as response:
        if response.status_code == 200:
            llm = (response.json() or {}).get("llm") or {}
            SEEN["cached" if llm.get("cached") else str(llm.get("status"))] += 1
            response.success()
        else:
            SEEN[f"http {response.status_code}"] += 1
            response.failure(f"status {response.status_code}")


# The realistic mix: 85 % /classify, 5 % batches of 10, 10 % /genai-classify (locust picks a
# task from this list at random, so the repetitions are the weights).
TASKS: list[TaskSet | Callable[..., Any]] = (
    [*[classify] * 85, *[classify_batch] * 5, *[genai_classify] * 10]
    if MIX == "mix"
    else [classify]
)


class Clinician(FastHttpUser):
    """A hospital backend: mostly single ML assessments, some batches, some GenAI."""

    wait_time = constant_throughput(USER_RPS) if USER_RPS > 0 else constant(0)
    headers: ClassVar[dict[str, str]] = {"X-API-Key": KEY, "Content-Type": "application/json"}
    tasks = TASKS


class Bounded(LoadTestShape):
    """All the users at once, for RUN_S seconds of the monotonic clock."""

    started: float | None = None

    def tick(self) -> tuple[int, float] | None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if now - self.started >= RUN_S:
            return None
        return USERS, float(USERS)


def _write_counts(**_: Any) -> None:
    if COUNTS_PATH:
        with open(COUNTS_PATH, "w") as handle:
            json.dump(dict(SEEN), handle)


# locust's event hooks carry no annotations.
events.test_stop.add_listener(_write_counts)  # type: ignore[no-untyped-call]

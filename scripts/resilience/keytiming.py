"""Part 6: the time to refuse a wrong key, for keys that share none, half, or all but one of
their leading characters with a valid key: many samples each, interleaved at random on one
keep-alive connection, medians and spread, and whether the time depends on the shared prefix
(a permutation test on the difference of medians)."""

from __future__ import annotations

import http.client
import random
import statistics
import string
import time
from urllib.parse import urlsplit

from scripts.resilience.common import Section, percentile, say
from scripts.resilience.stackup import ReportStack

ALPHABET = string.ascii_letters + string.digits + "-_"
PERMUTATIONS = 2000
P_BOUND = 0.01
PRACTICAL_US = 5.0
"""A difference of medians smaller than this is below anything a remote caller can resolve."""


def wrong_key(valid: str, shared: int, rng: random.Random) -> str:
    """A key of the valid key's length whose first `shared` characters are the valid key's
    and whose next character differs (the rest random)."""
    tail = [rng.choice(ALPHABET) for _ in range(len(valid) - shared)]
    tail[0] = rng.choice([c for c in ALPHABET if c != valid[shared]])
    return valid[:shared] + "".join(tail)


def median_gap(a: list[float], b: list[float]) -> float:
    return statistics.median(b) - statistics.median(a)


def permutation_p(a: list[float], b: list[float], *, rounds: int, rng: random.Random) -> float:
    """Two-sided p-value of the difference of medians under random relabelling."""
    observed = abs(median_gap(a, b))
    pooled = a + b
    hits = 0
    for _ in range(rounds):
        rng.shuffle(pooled)
        if abs(median_gap(pooled[: len(a)], pooled[len(a) :])) >= observed:
            hits += 1
    return (hits + 1) / (rounds + 1)


def key_timing_section(rs: ReportStack, *, samples: int) -> Section:
    section = Section("keys", "6. Time to refuse a wrong key")
    rng = random.Random(2019)
    valid = rs.client_key
    classes = {"0 shared": 0, "half shared": len(valid) // 2, "all but one shared": len(valid) - 1}
    keys = {name: [wrong_key(valid, n, rng) for _ in range(64)] for name, n in classes.items()}
    parts = urlsplit(rs.gateway_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    times: dict[str, list[float]] = {name: [] for name in classes}
    statuses: dict[str, set[int]] = {name: set() for name in classes}
    order = [name for name in classes for _ in range(samples)]
    rng.shuffle(order)
    say(f"keys: {len(order)} refusals")

    def refuse(name: str) -> tuple[int, float]:
        key = rng.choice(keys[name])
        started = time.perf_counter_ns()
        conn.request("GET", "/config/current", headers={"X-API-Key": key})
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter_ns() - started) / 1000

    # A warm-up, so that the first samples do not carry the connection's set-up.
    for name in list(classes) * 20:
        refuse(name)
    for name in order:
        status, elapsed = refuse(name)
        statuses[name].add(status)
        times[name].append(elapsed)
    conn.close()
    zero, last = times["0 shared"], times["all but one shared"]
    gap = median_gap(zero, last)
    p = permutation_p(zero, last, rounds=PERMUTATIONS, rng=rng)
    dependent = p < P_BOUND and abs(gap) >= PRACTICAL_US
    section.add(
        f"GET /config/current with a wrong `X-API-Key` of the valid key's length "
        f"({len(valid)} characters), {samples:,} samples per class drawn from 64 keys each, "
        f"the classes interleaved at random on one keep-alive connection (after a warm-up); "
        f"the round trip in microseconds.",
        "",
    )
    section.table(
        ["leading characters shared", "status", "median µs", "p25 µs", "p75 µs", "p90 µs",
         "p99 µs"],
        [[f"{name} ({classes[name]})", "/".join(map(str, sorted(statuses[name]))),
          f"{statistics.median(v):.1f}", f"{percentile(v, 25):.1f}", f"{percentile(v, 75):.1f}",
          f"{percentile(v, 90):.1f}", f"{percentile(v, 99):.1f}"] for name, v in times.items()],
    )  # fmt: skip
    verdict = "depends" if dependent else "does not depend"
    section.add(
        f"All but one shared against none: median {gap:+.1f} µs, permutation test on the "
        f"difference of medians p = {p:.3f} ({PERMUTATIONS} relabellings). The time to refuse "
        f"**{verdict}** on how many characters match (dependent would need p < {P_BOUND} and a "
        f"gap of at least {PRACTICAL_US:g} µs).",
        "",
    )
    section.check(
        "every wrong key refused with 401", all(s == {401} for s in statuses.values()),
        ", ".join(f"{n}: {sorted(s)}" for n, s in statuses.items()),
    )  # fmt: skip
    section.check(
        "time to refuse does not depend on the matching prefix", not dependent,
        f"gap {gap:+.1f} µs, p = {p:.3f}",
    )  # fmt: skip
    section.data = {
        "samples": samples,
        "key_length": len(valid),
        "median_us": {n: statistics.median(v) for n, v in times.items()},
        "p25_us": {n: percentile(v, 25) for n, v in times.items()},
        "p75_us": {n: percentile(v, 75) for n, v in times.items()},
        "gap_us": gap,
        "p_value": p,
        "dependent": dependent,
    }
    return section

"""The GenAI assessment of one patient, end to end.

    normalised patient
      -> clinical scores, trends, note red flags            (deterministic)
      -> guardrail floors                                    (deterministic, config in force)
      -> de-identified narrative -> cache -> LLM             (or the offline rules)
      -> floors applied: the answer may raise, never lower   -> response

The validated LLM answer is what is cached; the guardrail runs on every request after the
cache, so a reloaded guardrail config applies to cached answers at once. When the LLM fails the
response is the deterministic assessment with `degraded: true` and `llm.status` saying what
failed (or a 503 when `GENAI_FAIL_ON_LLM_ERROR` is set).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sepsis_genai.cache import AnswerCache
from sepsis_genai.guardrail import (
    GuardrailConfig,
    GuardrailResult,
    apply_floor,
    evaluate_guardrail,
    load_guardrail_config,
)
from sepsis_genai.llm import LLMClient
from sepsis_genai.narrative import PROMPT_VERSION, Prompt, build_prompt
from sepsis_genai.offline import OFFLINE_MODEL_NAME, OFFLINE_RULES_VERSION, offline_assessment
from sepsis_genai.schemas import (
    ANSWER_SCHEMA_VERSION,
    BatchItem,
    FiredRuleView,
    GenAIAssessment,
    GuardrailView,
    LLMAnswer,
    LLMInfo,
    LLMStatus,
    NoteFindingView,
    ProbabilitySource,
    Provider,
    TrendView,
)
from sepsis_genai.trends import Trend, compute_trends
from sepsis_shared.assessment import ModelInfo, alert_for, missing_inputs
from sepsis_shared.confidence import picture_of_patient
from sepsis_shared.errors import ServiceError, UpstreamUnavailable
from sepsis_shared.intake import InputLimits
from sepsis_shared.notes import NoteFinding, extract_findings
from sepsis_shared.patient import NormalizedPatient, parse_patient
from sepsis_shared.requestid import current_request_id
from sepsis_shared.scores import ClinicalScores, clinical_scores

logger = logging.getLogger("sepsis_genai.pipeline")

MAX_DRIVERS = 6


@lru_cache(maxsize=1)
def pipeline_version() -> str:
    """Package version plus the versions of everything that shapes an answer."""
    try:
        package = metadata.version("sepsis-genai")
    except metadata.PackageNotFoundError:
        package = "0+unknown"
    return (
        f"{package}+prompt.{PROMPT_VERSION}.schema.{ANSWER_SCHEMA_VERSION}"
        f".offline.{OFFLINE_RULES_VERSION}"
    )


class GuardrailHolder:
    """The guardrail config in force; `reload` swaps it in one assignment or not at all."""

    def __init__(self, config: GuardrailConfig, *, path: Path | None) -> None:
        self._config = config
        self.path = path
        self._lock = asyncio.Lock()

    @property
    def config(self) -> GuardrailConfig:
        return self._config

    async def reload(self) -> tuple[GuardrailConfig, GuardrailConfig]:
        """Re-read the file; returns (previous, new). Raises GuardrailConfigError, keeping the
        old config, when the file is bad."""
        async with self._lock:
            fresh = await asyncio.to_thread(load_guardrail_config, self.path)
            previous, self._config = self._config, fresh
            return previous, fresh


@dataclass(frozen=True, slots=True)
class _Facts:
    scores: ClinicalScores
    trends: dict[str, Trend]
    findings: list[NoteFinding]
    guardrail: GuardrailResult


class Pipeline:
    """Assesses patients; one per app, built in the lifespan."""

    def __init__(
        self,
        *,
        guardrail: GuardrailHolder,
        cache: AnswerCache,
        llm: LLMClient | None,
        max_notes_chars: int,
        fail_on_llm_error: bool,
        batch_concurrency: int,
    ) -> None:
        self.guardrail = guardrail
        self.cache = cache
        self.llm = llm
        self.max_notes_chars = max_notes_chars
        self.fail_on_llm_error = fail_on_llm_error
        self.batch_concurrency = batch_concurrency

    @property
    def input_limits(self) -> InputLimits:
        """How old a value may be and still count (the guardrail config in force)."""
        return self.guardrail.config.inputs

    @property
    def provider(self) -> Provider:
        return self.llm.provider if self.llm is not None else "offline"

    @property
    def model_label(self) -> str | None:
        return self.llm.model_label if self.llm is not None else None

    def key_material(self, prompt: Prompt) -> dict[str, Any]:
        """Everything that shapes the LLM's answer, hashed into the cache key."""
        assert self.llm is not None
        return {
            **self.llm.fingerprint(),
            "prompt_version": PROMPT_VERSION,
            "answer_schema_version": ANSWER_SCHEMA_VERSION,
            "narrative": prompt.narrative,
        }

    # ---- one patient -----------------------------------------------------------------------
    async def assess(self, patient: NormalizedPatient) -> GenAIAssessment:
        started = time.perf_counter()
        facts = self._facts(patient)
        if self.llm is None:
            answer = offline_assessment(
                patient, scores=facts.scores, trends=facts.trends, findings=facts.findings
            )
            info = LLMInfo(
                provider="offline",
                model=None,
                status=LLMStatus.OFFLINE,
                cached=False,
                latency_ms=0.0,
                attempts=0,
            )
            return self._respond(patient, facts, answer, info, started, from_llm=False)

        llm = self.llm
        prompt = build_prompt(
            patient,
            scores=facts.scores,
            trends=facts.trends,
            findings=facts.findings,
            max_notes_chars=self.max_notes_chars,
        )
        key = self.cache.key(self.key_material(prompt))
        looked_up = time.perf_counter()
        cached = await self.cache.get(key)
        if cached is not None:
            info = LLMInfo(
                provider=llm.provider,
                model=llm.model_label,
                status=LLMStatus.CACHED,
                cached=True,
                latency_ms=round((time.perf_counter() - looked_up) * 1000, 3),
                attempts=0,
            )
            return self._respond(patient, facts, cached, info, started, from_llm=True)

        async def store(answer: LLMAnswer) -> None:
            await self.cache.put(key, answer, model=llm.model_label)

        outcome = await llm.assess(prompt, key=key, on_answer=store)
        info = LLMInfo(
            provider=llm.provider,
            model=llm.model_label,
            status=outcome.status,
            cached=False,
            latency_ms=round(outcome.latency_ms, 3),
            attempts=outcome.attempts,
            error_kind=outcome.error_kind,
            response_format=outcome.response_format,
            coalesced=outcome.coalesced,
            prompt_tokens=outcome.tokens.prompt,
            completion_tokens=outcome.tokens.completion,
        )
        if outcome.answer is not None and outcome.status is LLMStatus.OK:
            return self._respond(patient, facts, outcome.answer, info, started, from_llm=True)
        # A used-up token budget is a decision, not a failure: the offline rules answer.
        if self.fail_on_llm_error and outcome.status is not LLMStatus.BUDGET_EXHAUSTED:
            raise UpstreamUnavailable(
                f"The language model's answer is unavailable ({outcome.status.value}).",
                details={"llm_status": outcome.status.value, "error_kind": outcome.error_kind},
            )
        fallback = offline_assessment(
            patient, scores=facts.scores, trends=facts.trends, findings=facts.findings
        )
        return self._respond(patient, facts, fallback, info, started, from_llm=False)

    def _facts(self, patient: NormalizedPatient) -> _Facts:
        scores = clinical_scores(patient)
        trends = compute_trends(patient)
        findings = extract_findings(patient.notes)
        result = evaluate_guardrail(
            self.guardrail.config,
            patient=patient,
            scores=scores,
            findings=findings,
            trends=trends,
        )
        return _Facts(scores=scores, trends=trends, findings=findings, guardrail=result)

    def _respond(
        self,
        patient: NormalizedPatient,
        facts: _Facts,
        answer: LLMAnswer,
        info: LLMInfo,
        started: float,
        *,
        from_llm: bool,
    ) -> GenAIAssessment:
        result = facts.guardrail
        priority, risk, overridden = apply_floor(answer.priority, answer.risk_score, result)
        # A probability is reported only where one was estimated: the LLM's own figure, as it
        # gave it. A rule-based risk score is not a probability, and raising the LLM's figure
        # to a rule's risk floor would invent one; the guardrail acts on priority and risk.
        probability: float | None = None
        source: ProbabilitySource = "not_estimated"
        if from_llm:
            probability = min(1.0, max(0.0, answer.sepsis_probability_6h))
            source = "llm_estimate"
        degraded = info.status not in (LLMStatus.OK, LLMStatus.CACHED, LLMStatus.OFFLINE)

        rationale = answer.rationale
        if info.status is LLMStatus.BUDGET_EXHAUSTED:
            rationale = (
                "The language model was not asked: this instance's daily token budget is used "
                "up. This is the deterministic guardrail and clinical-score assessment. "
                f"{rationale}"
            )
        elif degraded:
            rationale = (
                f"The language model's answer is unavailable ({info.status.value}); this is the "
                f"deterministic guardrail and clinical-score assessment. {rationale}"
            )
        if overridden:
            raised = ", ".join(f.rule_id for f in result.fired[:4])
            rationale += (
                f" Guardrail: raised from {answer.priority.value} (risk {answer.risk_score}) to "
                f"{priority.value} (risk {risk}) by {raised}."
            )

        drivers: list[str] = []
        for text in [*(f.wording for f in result.fired), *answer.key_findings]:
            if text and text not in drivers:
                drivers.append(text)
            if len(drivers) >= MAX_DRIVERS:
                break

        if from_llm:
            model = ModelInfo(name=f"{info.provider}:{info.model}", version=pipeline_version())
        else:
            model = ModelInfo(name=OFFLINE_MODEL_NAME, version=pipeline_version())

        assessment = GenAIAssessment(
            patient_id=patient.patient_id,
            risk_score=float(risk),
            sepsis_probability_6h=None if probability is None else round(probability, 4),
            probability_source=source,
            priority=priority,
            alert=alert_for(priority),
            clinical_scores=facts.scores,
            drivers=drivers,
            model=model,
            missing_inputs=missing_inputs(patient),
            confidence=picture_of_patient(patient),
            data_quality=list(patient.data_quality),
            findings=list(patient.findings),
            request_id=current_request_id(),
            processing_time_ms=round((time.perf_counter() - started) * 1000, 3),
            rationale=rationale,
            key_findings=list(answer.key_findings),
            recommended_actions=list(answer.recommended_actions),
            guardrail=GuardrailView(
                override=overridden,
                priority_floor=result.priority_floor if result.fired else None,
                risk_floor=result.risk_floor if result.fired else None,
                fired=[
                    FiredRuleView(
                        rule_id=f.rule_id,
                        description=f.description,
                        kind=f.kind,
                        priority_floor=f.priority,
                        risk_floor=f.risk_floor,
                        value=f.value,
                        threshold=f.threshold,
                        wording=f.wording,
                        adjusted_by=f.adjusted_by,
                    )
                    for f in result.fired
                ],
                config_version=result.config_version,
                adjustments=list(result.adjustments),
            ),
            llm=info,
            degraded=degraded,
            note_findings=[
                NoteFindingView(flag=f.flag, label=f.label, evidence=f.evidence)
                for f in facts.findings
            ],
            trends={
                name: TrendView(
                    variable=t.variable,
                    first=t.first,
                    last=t.last,
                    min=t.min,
                    max=t.max,
                    slope_per_hour=t.slope_per_hour,
                    n=t.n,
                    hours_span=t.hours_span,
                )
                for name, t in facts.trends.items()
            },
            pipeline_version=pipeline_version(),
        )
        logger.info(
            "assessed",
            extra={
                "priority": priority.value,
                "llm_status": info.status.value,
                "llm_cached": info.cached,
                "guardrail_override": overridden,
                "guardrail_rules": list(result.rule_ids),
                "degraded": degraded,
            },
        )
        return assessment

    # ---- batches ---------------------------------------------------------------------------
    async def assess_batch(self, items: Sequence[object]) -> list[BatchItem]:
        """Each patient parsed and assessed on its own; results in input order."""
        gate = asyncio.Semaphore(self.batch_concurrency)

        async def one(index: int, raw: object) -> BatchItem:
            try:
                patient = parse_patient(
                    raw, field_prefix=f"patients[{index}]", limits=self.input_limits
                )
                async with gate:
                    assessment = await self.assess(patient)
            except ServiceError as exc:
                return BatchItem(
                    index=index,
                    ok=False,
                    error={
                        "code": exc.code,
                        "status": exc.status,
                        "message": exc.message,
                        "details": exc.details,
                    },
                )
            return BatchItem(index=index, ok=True, assessment=assessment)

        return list(await asyncio.gather(*(one(i, raw) for i, raw in enumerate(items))))

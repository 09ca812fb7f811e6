"""CDS Hooks 2.0 (cds-hooks.hl7.org): the `sepsis-risk` service on the `patient-view` hook.

- Discovery lists the service with its prefetch templates: the Patient, recent vital-sign and
  laboratory Observations (required), and active conditions, medication administrations and
  current nursing notes (optional).
- A call is checked against the specification's request rules; its prefetch becomes one FHIR
  Bundle (`fhir.bundle_to_patient`), assessed by the hybrid ML pathway (CDS calls expect an
  answer in about half a second). A required prefetch key that is absent (the client chose not
  to, or failed to, fetch it: the specification has it left out then) is fetched from the
  client's FHIR server when the request gives one with a token and it is configured for that
  client (`fhir_fetch`); else, or when that fails, the answer is 412. A key sent as `null`
  means "no data": with no vital signs there is nothing to assess and the answer is an empty
  `cards` list.
- The card: `indicator` critical for a Critical priority, warning for Urgent, info for
  Elevated; a Standard priority has nothing to say, so no card. `summary` under 140
  characters; `detail` in GitHub-flavoured Markdown: drivers, the four scores, data quality,
  inputs not used and the confidence grade; `source` with its topic; `overrideReasons` with
  a `display` each (the specification requires it), so overrides say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sepsis_shared.errors import InvalidInput, ServiceError

SERVICE_ID: Final = "sepsis-risk"
HOOK: Final = "patient-view"
SUMMARY_MAX: Final = 139  # "<140-character summary"

REQUIRED_PREFETCH: Final = ("patient", "vitals", "labs")
PREFETCH: Final[Mapping[str, str]] = {
    "patient": "Patient/{{context.patientId}}",
    "vitals": (
        "Observation?patient={{context.patientId}}&category=vital-signs&_sort=-date&_count=200"
    ),
    "labs": "Observation?patient={{context.patientId}}&category=laboratory&_sort=-date&_count=200",
    "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
    "medications": "MedicationAdministration?patient={{context.patientId}}&status=in-progress",
    "notes": "DocumentReference?patient={{context.patientId}}&status=current&_sort=-date&_count=5",
}

TOPIC: Final = {
    "system": "urn:sepsis-early-warning:cds-topic",
    "code": "sepsis-risk",
    "display": "Sepsis risk",
}
OVERRIDE_SYSTEM: Final = "urn:sepsis-early-warning:override-reason"
OVERRIDE_REASONS: Final = (
    ("already-treated", "Sepsis already recognised and being treated"),
    ("other-cause", "Findings explained by another cause"),
    ("data-wrong", "Data wrong or out of date"),
    ("goals-of-care", "Comfort care or limits of treatment"),
    ("reassess-later", "Will reassess shortly"),
)
INDICATORS: Final = {"Critical": "critical", "Urgent": "warning", "Elevated": "info"}
# The one suggestion of a card: taking it is the card's "accepted" feedback (a card without a
# suggestion could only ever be overridden). No action: what review means is the ward's.
SUGGESTIONS: Final = {
    "Critical": "Review now for sepsis: start the sepsis pathway",
    "Urgent": "Review for sepsis within 30 minutes",
    "Elevated": "Repeat observations within the hour and watch closely",
}


class PreconditionFailed(ServiceError):
    """412: the data the service needs is neither prefetched nor fetchable (CDS Hooks 2.0)."""

    status = 412
    code = "precondition_failed"


def discovery() -> dict[str, Any]:
    """The discovery document (`GET /cds-services`)."""
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "Sepsis risk",
                "description": (
                    "Sepsis risk when a patient's chart is opened: a 0-100 risk score and "
                    "priority from the hybrid ML assessment (clinical scores qSOFA, SIRS, NEWS2 "
                    "and SOFA with a gradient-boosted model), with its drivers, data quality "
                    "and confidence. A card only when the priority is Elevated or above."
                ),
                "prefetch": dict(PREFETCH),
                "usageRequirements": (
                    "Prefetch patient, vitals and labs, or give fhirServer (one configured for "
                    "your client) and fhirAuthorization. Authenticate with a JWT signed with "
                    "RS384 or ES384."
                ),
            }
        ]
    }


def _field(path: str, message: str) -> dict[str, str]:
    return {"field": path, "message": message}


def check_request(raw: object) -> dict[str, Any]:
    """The request body when it follows the specification's request rules; else 422."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            "A CDS Hooks request is a JSON object.", details=[_field("body", "not an object")]
        )
    errors: list[dict[str, str]] = []
    if raw.get("hook") != HOOK:
        errors.append(_field("hook", f"this service answers the {HOOK} hook"))
    instance = raw.get("hookInstance")
    try:
        uuid.UUID(str(instance))
    except ValueError:
        errors.append(_field("hookInstance", "required: a UUID"))
    context = raw.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str):
        errors.append(_field("context.patientId", "required: the FHIR id of the patient"))
    if "fhirAuthorization" in raw and not raw.get("fhirServer"):
        errors.append(_field("fhirServer", "required when fhirAuthorization is given"))
    prefetch = raw.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, dict):
        errors.append(_field("prefetch", "expected an object of prefetch keys"))
    if errors:
        raise InvalidInput(
            f"Invalid CDS Hooks request: {errors[0]['field']}: {errors[0]['message']}",
            details=errors,
        )
    return raw


def missing_prefetch(request: Mapping[str, Any]) -> list[str]:
    """The required prefetch keys the client left out or answered with an OperationOutcome
    (a failed prefetch, as CDS Hooks 2.0 allows)."""
    prefetch: Mapping[str, Any] = request.get("prefetch") or {}
    return [
        key
        for key in REQUIRED_PREFETCH
        if key not in prefetch
        or (
            isinstance(prefetch[key], dict)
            and prefetch[key].get("resourceType") == "OperationOutcome"
        )
    ]


def precondition_failed(missing: Sequence[str], why: str) -> PreconditionFailed:
    """The 412 naming the prefetch keys missing and their templates."""
    return PreconditionFailed(
        f"Prefetch {', '.join(missing)} missing; {why}",
        details={"missing_prefetch": list(missing), "templates": {k: PREFETCH[k] for k in missing}},
    )


def prefetch_query(key: str, context: Mapping[str, Any]) -> str:
    """A prefetch template with its tokens replaced from the hook context."""
    return PREFETCH[key].replace("{{context.patientId}}", str(context["patientId"]))


def prefetch_bundle(request: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
    """One FHIR Bundle of every prefetched resource, and where in the request each of its
    entries came from (`prefetch.vitals.entry[3].resource`); None when the client said there
    are no vital signs (the key sent as null: nothing to assess). Raises 412 when a required
    key is absent or was answered with an OperationOutcome (a failed prefetch)."""
    prefetch: Mapping[str, Any] = request.get("prefetch") or {}
    failed = missing_prefetch(request)
    if failed:
        raise precondition_failed(
            failed, "this service needs them prefetched or a FHIR server it may query."
        )
    if prefetch.get("vitals") is None:
        return None
    entries: list[dict[str, Any]] = []
    origins: list[str] = []
    seen: set[tuple[str, str]] = set()

    def add(resource: dict[str, Any], origin: str) -> None:
        # one resource may answer two templates (an Observation in two categories)
        rid = resource.get("id")
        if isinstance(rid, str):
            key = (str(resource.get("resourceType")), rid)
            if key in seen:
                return
            seen.add(key)
        entries.append({"resource": resource})
        origins.append(origin)

    for key in PREFETCH:
        value = prefetch.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidInput(
                f"prefetch.{key} is not a FHIR resource.",
                details=[_field(f"prefetch.{key}", "expected a FHIR resource or Bundle")],
            )
        if value.get("resourceType") == "Bundle":
            for i, entry in enumerate(value.get("entry") or []):
                if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                    continue
                # a searchset's outcome entries are about the search, not the patient
                if (entry.get("search") or {}).get("mode") != "outcome":
                    add(entry["resource"], f"prefetch.{key}.entry[{i}].resource")
        elif value.get("resourceType") != "OperationOutcome":
            add(value, f"prefetch.{key}")
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}, origins


def request_path(bundle_path: str, origins: list[str]) -> str:
    """A path into the assembled Bundle (`Bundle.entry[2].resource.valueQuantity`) as a path
    into the CDS Hooks request (`prefetch.vitals.entry[0].resource.valueQuantity`)."""
    prefix = "Bundle.entry["
    if not bundle_path.startswith(prefix):
        return bundle_path
    index, _, rest = bundle_path[len(prefix) :].partition("]")
    if not index.isdigit() or int(index) >= len(origins):
        return bundle_path
    rest = rest.removeprefix(".resource")
    return origins[int(index)] + rest


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _score_row(name: str, score: Mapping[str, Any]) -> str:
    missing = score.get("missing") or []
    note = f" (not scored: {', '.join(missing)})" if missing else ""
    return f"| {name} | {score.get('score')}/{score.get('max_score')}{note} |"


def card_for(
    assessment: Mapping[str, Any],
    fhir_report: Mapping[str, Any],
    *,
    source_url: str | None,
    assessment_url: str | None = None,
) -> dict[str, Any] | None:
    """The card of one assessment; None when the priority has nothing to say (Standard).
    `assessment_url`: where the full assessment can be read (the card's link)."""
    priority = str(assessment.get("priority"))
    indicator = INDICATORS.get(priority)
    if indicator is None:
        return None
    risk = assessment.get("risk_score")
    alert = assessment.get("alert") or {}
    action = str(alert.get("action") or "")
    summary = _truncate(f"Sepsis risk {priority} ({risk}/100): {action}", SUMMARY_MAX)
    lines = [f"**Sepsis risk {risk}/100, priority {priority}.** {action}", ""]
    drivers = assessment.get("drivers") or []
    if drivers:
        lines += ["**What moved the score**", "", *[f"- {d}" for d in drivers], ""]
    scores = assessment.get("clinical_scores") or {}
    if scores:
        lines += ["| Score | Points |", "| --- | --- |"]
        for key, name in (
            ("qsofa", "qSOFA"),
            ("sirs", "SIRS"),
            ("news2", "NEWS2"),
            ("sofa", "SOFA"),
        ):
            if isinstance(scores.get(key), dict):
                lines.append(_score_row(name, scores[key]))
        lines.append("")
    confidence = assessment.get("confidence") or {}
    if confidence:
        lines.append(f"**Confidence: {confidence.get('level')}.** {confidence.get('summary', '')}")
        lines += [f"- {r}" for r in confidence.get("reasons") or []]
        lines.append("")
    quality = assessment.get("data_quality") or []
    if quality:
        lines += ["**Data quality**", ""]
        lines += [f"- {q.get('field')}: {q.get('reason')}" for q in quality if isinstance(q, dict)]
        lines.append("")
    not_used = fhir_report.get("not_used") or []
    if not_used:
        lines.append(
            f"{len(not_used)} prefetched item(s) were not used (unknown codes, "
            "entered in error, no value)."
        )
    model = assessment.get("model") or {}
    if model:
        lines.append(
            f"Model {model.get('name')} {model.get('version')}; this supports, and does "
            "not replace, clinical judgement."
        )
    source: dict[str, Any] = {"label": "Sepsis early-warning API", "topic": dict(TOPIC)}
    if source_url:
        source["url"] = source_url
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": indicator,
        "detail": "\n".join(lines).strip(),
        "source": source,
        "suggestions": [{"label": SUGGESTIONS[priority], "uuid": str(uuid.uuid4())}],
        "selectionBehavior": "at-most-one",
        "overrideReasons": [
            {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS
        ],
    }
    if assessment_url:
        card["links"] = [
            {"label": "Full sepsis assessment", "url": assessment_url, "type": "absolute"}
        ]
    return card

"""Typed Python client of the sepsis early-warning API (sync and async).

from sepsis_client import SepsisClient

with SepsisClient("http://127.0.0.1:8000", api_key="...") as api:
    answer = api.classify({"HR": 110, "SBP": 95, "Temp": 38.5})
    print(answer.priority, answer.risk_score, answer.drivers)
"""

from sepsis_client.client import NOT_COVERED, OPERATIONS, AsyncSepsisClient, SepsisClient
from sepsis_client.errors import (
    BadRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SepsisError,
    ServerError,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from sepsis_client.models import (
    Assessment,
    BatchResponse,
    FhirGenAIAssessment,
    FhirMLAssessment,
    FhirReport,
    GenAIAssessment,
    Health,
    MLAssessment,
    MLBatchResponse,
    Performance,
)

__all__ = [
    "NOT_COVERED",
    "OPERATIONS",
    "Assessment",
    "AsyncSepsisClient",
    "BadRequest",
    "BatchResponse",
    "FhirGenAIAssessment",
    "FhirMLAssessment",
    "FhirReport",
    "Forbidden",
    "GenAIAssessment",
    "Health",
    "InvalidInput",
    "MLAssessment",
    "MLBatchResponse",
    "NotFound",
    "PayloadTooLarge",
    "Performance",
    "RateLimited",
    "SepsisClient",
    "SepsisError",
    "ServerError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

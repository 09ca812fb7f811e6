"""Settings of ml-service, read from the environment (built only in `create_app`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field

from sepsis_shared.settings import InternalServiceSettings


class MLSettings(InternalServiceSettings):
    """Environment of ml-service (plus SERVICE_TOKEN, LOG_LEVEL, LOG_FORMAT from the base)."""

    config_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ML_CONFIG_PATH"),
        description="Clinical config (YAML); default: the packaged sepsis_ml/ml-config.yaml.",
    )
    model_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ML_MODEL_DIR"),
        description="Model artefact directory; default: the packaged sepsis_ml/artifacts/.",
    )
    max_batch: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        validation_alias=AliasChoices("ML_MAX_BATCH"),
        description="Most patients accepted by /classify-batch (more is a 413).",
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices("ML_MAX_BODY_BYTES"),
        description="Largest request body read (more is a 413).",
    )
    inference_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        validation_alias=AliasChoices("ML_INFERENCE_THREADS"),
        description="Inference thread-pool size (a model call runs on one thread); default: cores.",
    )

    def threads(self) -> int:
        """The inference thread count: the configured one, else the cores this process may use."""
        if self.inference_threads is not None:
            return self.inference_threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not every platform has sched_getaffinity
            return os.cpu_count() or 1

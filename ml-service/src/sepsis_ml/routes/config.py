"""GET /config/current and POST /reload-config: the clinical config in force."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter

from sepsis_ml.mlconfig import ConfigError, LoadedConfig
from sepsis_ml.routes.deps import StateDep
from sepsis_ml.runtime import ServiceState
from sepsis_ml.schemas import ConfigView, ModelView, ReloadResult
from sepsis_shared.errors import ERROR_RESPONSES, InvalidInput
from sepsis_shared.service import AdminCaller

logger = logging.getLogger("sepsis_ml.config")
router = APIRouter(tags=["config"])


def config_view(state: ServiceState, loaded: LoadedConfig) -> ConfigView:
    """The config in force with the model it applies to."""
    model = state.model
    return ConfigView(
        version=loaded.config.version,
        description=loaded.config.description,
        path=str(loaded.path),
        sha256=loaded.sha256,
        loaded_at=loaded.loaded_at,
        model=ModelView(
            name=model.name,
            version=model.version,
            alert_threshold=model.alert_threshold,
            feature_count=len(model.feature_names),
        ),
        effective_alert_threshold=state.alert_threshold(loaded),
        alert_threshold_source="model" if loaded.config.alert_threshold is None else "config",
        config=loaded.config,
    )


@router.get("/config/current", response_model=ConfigView, responses=ERROR_RESPONSES)
async def current_config(state: StateDep) -> ConfigView:
    """Thresholds, blend weights, bands, floors and model version in force."""
    return config_view(state, state.configs.current)


@router.post(
    "/reload-config",
    response_model=ReloadResult,
    responses=ERROR_RESPONSES,
    dependencies=[AdminCaller],
)
async def reload_config(state: StateDep) -> ReloadResult:
    """Re-read and validate the config file; a bad file is rejected and the old one stays."""
    in_force = state.configs.current
    try:
        previous, fresh = await asyncio.to_thread(state.configs.reload)
    except ConfigError as exc:
        logger.warning(
            "config reload rejected",
            extra={"fields": [e.field for e in exc.errors], "version": in_force.config.version},
        )
        raise InvalidInput(
            f"{exc}; config version {in_force.config.version} stays in force.",
            details=[e.model_dump() for e in exc.errors],
        ) from None
    logger.info(
        "config reloaded",
        extra={
            "version": fresh.config.version,
            "previous_version": previous.config.version,
            "sha256": fresh.sha256,
        },
    )
    return ReloadResult(
        changed=fresh.sha256 != previous.sha256,
        previous_version=previous.config.version,
        previous_sha256=previous.sha256,
        current=config_view(state, fresh),
    )

"""The versioned clinical configuration of the hybrid pathway: schema, loading, atomic reload.

The file (YAML, `ml-config.yaml` in this package unless ML_CONFIG_PATH names another) says how
the model's probability and the clinical scores blend into the 0-100 risk score, where the
priority bands start, and which clinical criteria set a floor under the priority. Loading is
two steps: the pydantic schema (types, ranges, no unknown keys) and the semantic checks
(weights sum to one, bands ordered, score thresholds within each score's range). Either
failure names the offending field. `ConfigStore.reload` swaps the active config by one
reference assignment under a lock, so a request sees either the old config or the new one,
never a mix, and a rejected file leaves the old one in force.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from sepsis_shared.assessment import Priority
from sepsis_shared.errors import FieldError
from sepsis_shared.intake import InputLimits

CONFIG_FILE: Final = "ml-config.yaml"
MAX_CONFIG_BYTES: Final = 256 * 1024
_WEIGHT_TOLERANCE: Final = 1e-6


class ScoreName(StrEnum):
    """The clinical scores the blend and the floors can read."""

    qsofa = "qsofa"
    sirs = "sirs"
    news2 = "news2"
    sofa = "sofa"


SCORE_MAX: Final[dict[ScoreName, int]] = {
    ScoreName.qsofa: 3,
    ScoreName.sirs: 4,
    ScoreName.news2: 20,
    ScoreName.sofa: 24,
}
"""Highest value each score can take (the published definitions)."""


def _version_text(value: object) -> object:
    # YAML reads `version: 3` or `version: 2026.1` as numbers; a version is text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Weight = Annotated[float, Field(ge=0.0, le=1.0)]


class BlendConfig(_Strict):
    """How the model probability and the clinical scores combine into the risk score."""

    method: Literal["weighted", "max"] = Field(
        description="`weighted`: model_weight * model + clinical_weight * clinical; "
        "`max`: the larger of the two components (the weights are then unused)."
    )
    model_weight: Weight
    clinical_weight: Weight
    threshold_maps_to: float = Field(
        gt=0.0,
        lt=1.0,
        description="Model component (0-1) of a probability equal to the alert threshold; "
        "probabilities are mapped piecewise-linearly 0 -> 0, threshold -> this, 1 -> 1.",
    )
    clinical_weights: dict[ScoreName, Weight] = Field(
        description="Share of each score in the clinical component (sum 1)."
    )
    clinical_saturation: dict[ScoreName, int] = Field(
        description="Score value at which that score's share is full (component 1)."
    )


class Bands(_Strict):
    """Lower bounds (inclusive) of the priority bands on the 0-100 risk score."""

    critical: float = Field(gt=0.0, le=100.0)
    urgent: float = Field(gt=0.0, le=100.0)
    elevated: float = Field(gt=0.0, le=100.0)

    def lower_bound(self, priority: Priority) -> float:
        """The lowest risk score of a priority's band (0 for Standard)."""
        if priority is Priority.CRITICAL:
            return self.critical
        if priority is Priority.URGENT:
            return self.urgent
        if priority is Priority.ELEVATED:
            return self.elevated
        return 0.0

    def priority_for(self, risk_score: float) -> Priority:
        """The band a risk score falls in."""
        if risk_score >= self.critical:
            return Priority.CRITICAL
        if risk_score >= self.urgent:
            return Priority.URGENT
        if risk_score >= self.elevated:
            return Priority.ELEVATED
        return Priority.STANDARD


class SepticShockRule(_Strict):
    """Sepsis-3 septic-shock criteria as a floor under the priority."""

    enabled: bool = True
    priority: Priority = Priority.CRITICAL
    map_below_mmhg: float = Field(ge=30.0, le=120.0)
    lactate_above_mmol_l: float = Field(ge=0.0, le=20.0)
    vasopressors_count: bool = Field(
        description="Vasopressors running (with the lactate criterion) meet the criteria "
        "whatever the MAP."
    )
    estimate_map_from_sbp_dbp: bool = Field(
        description="Without a MAP, estimate it as (SBP + 2 DBP) / 3 from the latest pair."
    )


class InfectionRule(_Strict):
    """Sepsis-3 at the bedside as a floor under the priority: suspected or confirmed infection
    together with organ dysfunction (a SOFA score of 2 or more)."""

    enabled: bool = True
    priority: Priority = Priority.URGENT
    infection_at_least: int = Field(
        default=1, ge=1, le=2, description="1: suspected or confirmed; 2: confirmed only."
    )
    sofa_at_least: int = Field(default=2, ge=1, le=24)


class ModelFloor(_Strict):
    """A model probability at or above the alert threshold sets a floor under the priority."""

    enabled: bool = True
    priority: Priority


class ScoreFloor(_Strict):
    """A clinical score at or above a value sets a floor under the priority."""

    score: ScoreName
    at_least: int = Field(ge=1)
    priority: Priority
    source: str | None = Field(default=None, description="Where the threshold comes from.")

    @property
    def rule(self) -> str:
        """The rule's name as reported in responses, e.g. `qsofa>=2`."""
        return f"{self.score.value}>={self.at_least}"


class MLConfig(_Strict):
    """The whole clinical configuration file."""

    version: Annotated[str, BeforeValidator(_version_text), Field(min_length=1, max_length=64)]
    description: str | None = None
    alert_threshold: float | None = Field(
        gt=0.0,
        lt=1.0,
        description="Probability at which the model alone calls for review; null = the "
        "model's own threshold from its metadata.",
    )
    blend: BlendConfig
    bands: Bands
    septic_shock: SepticShockRule
    infection_with_organ_dysfunction: InfectionRule = InfectionRule()
    model_floor: ModelFloor
    score_floors: list[ScoreFloor]
    inputs: InputLimits = Field(
        default=InputLimits(),
        description="How old a vital sign or a lab result may be and still count.",
    )


class ConfigError(Exception):
    """A config file that cannot be used; `errors` name the offending fields."""

    def __init__(self, path: Path, errors: Sequence[FieldError]) -> None:
        self.path = path
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        reason = f"{first.field}: {first.message}" if first else "invalid"
        super().__init__(f"{path.name} rejected ({reason})")


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a bad mapping key: the key names it already
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def semantic_errors(config: MLConfig) -> list[FieldError]:
    """What the schema cannot say: sums, order and ranges that depend on other fields."""
    errors: list[FieldError] = []
    blend = config.blend
    total = blend.model_weight + blend.clinical_weight
    if not math.isclose(total, 1.0, abs_tol=_WEIGHT_TOLERANCE):
        errors.append(
            FieldError(
                field="blend.clinical_weight",
                message=f"model_weight + clinical_weight must sum to 1, not {total:g}",
            )
        )
    shares = sum(blend.clinical_weights.values())
    if not math.isclose(shares, 1.0, abs_tol=_WEIGHT_TOLERANCE):
        errors.append(
            FieldError(
                field="blend.clinical_weights",
                message=f"the score shares must sum to 1, not {shares:g}",
            )
        )
    for name in blend.clinical_weights:
        if name not in blend.clinical_saturation:
            errors.append(
                FieldError(
                    field=f"blend.clinical_saturation.{name.value}",
                    message=f"{name.value} has a share but no saturation value",
                )
            )
    for name, value in blend.clinical_saturation.items():
        if not 1 <= value <= SCORE_MAX[name]:
            errors.append(
                FieldError(
                    field=f"blend.clinical_saturation.{name.value}",
                    message=f"must lie in 1-{SCORE_MAX[name]} for {name.value}, not {value}",
                )
            )
    bands = config.bands
    if not bands.elevated < bands.urgent:
        errors.append(FieldError(field="bands.urgent", message="must be above bands.elevated"))
    if not bands.urgent < bands.critical:
        errors.append(FieldError(field="bands.critical", message="must be above bands.urgent"))
    seen: set[tuple[ScoreName, int]] = set()
    for i, floor in enumerate(config.score_floors):
        if floor.at_least > SCORE_MAX[floor.score]:
            errors.append(
                FieldError(
                    field=f"score_floors[{i}].at_least",
                    message=f"{floor.score.value} cannot exceed {SCORE_MAX[floor.score]}",
                )
            )
        key = (floor.score, floor.at_least)
        if key in seen:
            errors.append(
                FieldError(field=f"score_floors[{i}]", message=f"{floor.rule} appears twice")
            )
        seen.add(key)
    return errors


def parse_config(text: str, *, path: Path) -> MLConfig:
    """Validate a config file's text (schema, then semantics); raise ConfigError."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, [FieldError(field="(file)", message=f"not YAML{where}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, [FieldError(field="(file)", message="expected a YAML mapping")])
    try:
        config = MLConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            path,
            [FieldError(field=_loc(e["loc"]), message=e["msg"]) for e in exc.errors()],
        ) from None
    errors = semantic_errors(config)
    if errors:
        raise ConfigError(path, errors)
    return config


def packaged_config_path() -> Path:
    """The config file shipped inside the package."""
    return Path(str(importlib.resources.files("sepsis_ml").joinpath(CONFIG_FILE)))


class FloorRule(NamedTuple):
    """A score floor flattened for the per-patient path."""

    score: str
    at_least: int
    priority: Priority
    rank: int
    rule: str


@dataclass(frozen=True, slots=True)
class BlendPlan:
    """A config flattened once for the per-patient path (plain tuples, no model lookups)."""

    config: MLConfig
    weighted: bool
    model_weight: float
    clinical_weight: float
    threshold_maps_to: float
    shares: tuple[tuple[str, float, int], ...]
    """(score, share, saturation) of each score in the clinical component."""
    bands: Bands
    shock: SepticShockRule
    infection: InfectionRule
    floors: tuple[FloorRule, ...]
    model_floor: Priority | None
    """The model floor's priority, None when it is disabled."""

    @classmethod
    def of(cls, config: MLConfig) -> BlendPlan:
        """The plan of a validated config."""
        b = config.blend
        return cls(
            config=config,
            weighted=b.method == "weighted",
            model_weight=b.model_weight,
            clinical_weight=b.clinical_weight,
            threshold_maps_to=b.threshold_maps_to,
            shares=tuple(
                (name.value, share, b.clinical_saturation[name])
                for name, share in b.clinical_weights.items()
            ),
            bands=config.bands,
            shock=config.septic_shock,
            infection=config.infection_with_organ_dysfunction,
            floors=tuple(
                FloorRule(f.score.value, f.at_least, f.priority, f.priority.rank, f.rule)
                for f in config.score_floors
            ),
            model_floor=config.model_floor.priority if config.model_floor.enabled else None,
        )


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """An active config with where it came from."""

    config: MLConfig
    path: Path
    sha256: str
    loaded_at: datetime
    plan: BlendPlan


def load_config(path: Path | None = None) -> LoadedConfig:
    """Read and validate a config file (default: the packaged one); raise ConfigError."""
    path = packaged_config_path() if path is None else path
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            path, [FieldError(field="ML_CONFIG_PATH", message=f"cannot read the file: {reason}")]
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            path,
            [FieldError(field="(file)", message=f"larger than {MAX_CONFIG_BYTES} bytes")],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, [FieldError(field="(file)", message="not UTF-8")]) from None
    config = parse_config(text, path=path)
    return LoadedConfig(
        config=config,
        plan=BlendPlan.of(config),
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        loaded_at=datetime.now(UTC),
    )


class ConfigStore:
    """The active config; `current` is one reference, replaced whole by `reload`."""

    def __init__(self, initial: LoadedConfig, *, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._current = initial

    @classmethod
    def open(cls, path: Path | None = None) -> ConfigStore:
        """Load the config at `path` (default: the packaged one); raise ConfigError."""
        return cls(load_config(path), path=path)

    @property
    def current(self) -> LoadedConfig:
        """The config in force (read it once per request and keep the reference)."""
        return self._current

    def reload(self) -> tuple[LoadedConfig, LoadedConfig]:
        """Re-read the file; on success swap it in and return (previous, new).

        Raises ConfigError and keeps the config in force when the file is unusable.
        """
        with self._lock:
            fresh = load_config(self._path)
            previous = self._current
            self._current = fresh
            return previous, fresh

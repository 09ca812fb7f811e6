"""The clinical config: schema, semantic checks naming the field, atomic reload."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from sepsis_ml.config import MLSettings
from sepsis_ml.mlconfig import (
    ConfigError,
    ConfigStore,
    MLConfig,
    load_config,
    packaged_config_path,
    parse_config,
)


def _shipped() -> dict[str, Any]:
    data = yaml.safe_load(packaged_config_path().read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _errors(data: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(data), path=Path("test.yaml"))
    return {e.field: e.message for e in caught.value.errors}


def test_packaged_config_loads_with_its_hash() -> None:
    loaded = load_config()
    assert loaded.path == packaged_config_path()
    assert loaded.sha256 == hashlib.sha256(packaged_config_path().read_bytes()).hexdigest()
    assert isinstance(loaded.config, MLConfig)
    assert loaded.config.alert_threshold is None, "the shipped config defers to the model"


def test_settings_default_to_the_packaged_config() -> None:
    settings = MLSettings(SERVICE_TOKEN="ml-config-test-token-0123456789")
    assert settings.config_path is None
    assert settings.max_batch == 1000
    assert settings.threads() >= 1
    assert (
        MLSettings(
            SERVICE_TOKEN="ml-config-test-token-0123456789", ML_INFERENCE_THREADS=3
        ).threads()
        == 3
    )


def test_numeric_version_is_read_as_text() -> None:
    data = _shipped()
    data["version"] = 7
    assert parse_config(yaml.safe_dump(data), path=Path("x.yaml")).version == "7"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(version=""), "version"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(alert_threshold=1.5), "alert_threshold"),
        (lambda d: d.update(alert_threshold=0), "alert_threshold"),
        (lambda d: d["blend"].update(model_weight=-0.1), "blend.model_weight"),
        (lambda d: d["blend"].update(method="median"), "blend.method"),
        (lambda d: d["blend"].update(threshold_maps_to=1.0), "blend.threshold_maps_to"),
        (
            lambda d: d["blend"]["clinical_weights"].update(apache=0.1),
            "blend.clinical_weights.apache",
        ),
        (lambda d: d["bands"].update(urgent="high"), "bands.urgent"),
        (lambda d: d["bands"].update(critical=120), "bands.critical"),
        (lambda d: d["septic_shock"].update(map_below_mmhg=500), "septic_shock.map_below_mmhg"),
        (lambda d: d["septic_shock"].update(priority="Severe"), "septic_shock.priority"),
        (lambda d: d["model_floor"].pop("priority"), "model_floor.priority"),
        (lambda d: d["score_floors"][0].update(at_least=0), "score_floors[0].at_least"),
        (lambda d: d["score_floors"][1].update(score="apache"), "score_floors[1].score"),
    ],
)
def test_schema_errors_name_the_field(edit: Any, field: str) -> None:
    data = _shipped()
    edit(data)
    assert field in _errors(data)


def test_blend_weights_must_sum_to_one() -> None:
    data = _shipped()
    data["blend"]["model_weight"] = 0.7
    errors = _errors(data)
    assert "blend.clinical_weight" in errors
    assert "sum to 1" in errors["blend.clinical_weight"]


def test_clinical_shares_must_sum_to_one() -> None:
    data = _shipped()
    data["blend"]["clinical_weights"]["qsofa"] = 0.9
    assert "blend.clinical_weights" in _errors(data)


def test_saturation_must_lie_within_the_score_range() -> None:
    data = _shipped()
    data["blend"]["clinical_saturation"]["qsofa"] = 4
    assert "blend.clinical_saturation.qsofa" in _errors(data)
    data = _shipped()
    del data["blend"]["clinical_saturation"]["news2"]
    assert "blend.clinical_saturation.news2" in _errors(data)


def test_bands_must_be_ordered() -> None:
    data = _shipped()
    data["bands"]["urgent"] = data["bands"]["critical"]
    assert "bands.critical" in _errors(data)
    data = _shipped()
    data["bands"]["elevated"] = data["bands"]["urgent"] + 1
    assert "bands.urgent" in _errors(data)


def test_score_floor_thresholds_must_be_reachable_and_unique() -> None:
    data = _shipped()
    data["score_floors"][0] = {"score": "qsofa", "at_least": 4, "priority": "Urgent"}
    assert "score_floors[0].at_least" in _errors(data)
    data = _shipped()
    data["score_floors"].append(dict(data["score_floors"][0]))
    last = len(data["score_floors"]) - 1
    assert f"score_floors[{last}]" in _errors(data)


def test_not_yaml_and_not_a_mapping_are_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: [unclosed", path=Path("bad.yaml"))
    assert caught.value.errors[0].field == "(file)"
    assert "line" in caught.value.errors[0].message
    assert _errors(["a", "list"]) == {"(file)": "expected a YAML mapping"}


def test_unreadable_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")
    assert caught.value.errors[0].field == "ML_CONFIG_PATH"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_reload_swaps_a_good_file_and_keeps_the_old_on_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "ml-config.yaml"
    data = _shipped()
    _write(path, data)
    store = ConfigStore.open(path)
    first = store.current
    assert first.config.version == data["version"]

    data["version"] = "test-2"
    data["bands"]["critical"] = 80
    _write(path, data)
    previous, fresh = store.reload()
    assert previous is first
    assert store.current is fresh
    assert fresh.config.version == "test-2"
    assert fresh.config.bands.critical == 80
    assert fresh.sha256 != first.sha256

    data["version"] = "test-3"
    data["blend"]["clinical_weight"] = 0.9
    _write(path, data)
    with pytest.raises(ConfigError) as caught:
        store.reload()
    assert "blend.clinical_weight" in str(caught.value)
    assert store.current is fresh, "a rejected file leaves the config in force untouched"

    path.unlink()
    with pytest.raises(ConfigError):
        store.reload()
    assert store.current is fresh

"""The apprunner/ files against botocore's API model (scripts/aws_inputs.py), offline.

The real files must pass; a copy broken in each way the model forbids must fail, naming the
file, the operation and the member.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    name = "sepsis_aws_inputs"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "aws_inputs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


aws = _load()


def test_every_apprunner_file_is_valid_for_its_operation() -> None:
    assert aws.check(aws.SAMPLE_ENV) == []
    operations = {(r.service, r.operation) for r in aws.requests(aws.SAMPLE_ENV)}
    assert operations == {
        ("apprunner", "CreateAutoScalingConfiguration"),
        ("apprunner", "CreateVpcConnector"),
        ("apprunner", "CreateService"),
        ("apprunner", "UpdateService"),
        ("apprunner", "CreateVpcIngressConnection"),
        ("cloudwatch", "PutMetricAlarm"),
    }


def test_the_sample_values_cover_every_placeholder() -> None:
    used: set[str] = set()
    for path in (ROOT / "apprunner").glob("*.json"):
        used |= set(aws._PLACEHOLDER.findall(path.read_text()))
    assert used <= set(aws.SAMPLE_ENV)


def _set(*keys: str | int, value: Any) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value

    return edit


def _drop(*keys: str) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        del doc[keys[-1]]

    return edit


_IMAGE = ("SourceConfiguration", "ImageRepository")
BROKEN: dict[str, tuple[str, Callable[[Any], None], str]] = {
    # name: (file, edit, what the fault names)
    "enum": (
        "gateway.service.json",
        _set("HealthCheckConfiguration", "Protocol", value="HTTPS"),
        "HealthCheckConfiguration.Protocol",
    ),
    "type": (
        "gateway.service.json",
        _set(*_IMAGE, "ImageConfiguration", "Port", value=8000),
        "Port",
    ),
    "range max": (
        "ml-service.service.json",
        _set("HealthCheckConfiguration", "Interval", value=30),
        "Interval",
    ),
    "range min": (
        "genai-service.autoscaling.json",
        _set("MinSize", value=0),
        "MinSize",
    ),
    "pattern": (
        "genai-service.service.json",
        _set("InstanceConfiguration", "Memory", value="2GB"),
        "InstanceConfiguration.Memory",
    ),
    "length max": (
        "gateway.service.json",
        _set("ServiceName", value="sepsis-gateway-" + "x" * 40),
        "ServiceName",
    ),
    "unknown member": (
        "ml-service.service.json",
        _set("HealthCheck", value={"Path": "/healthz"}),
        "HealthCheck",
    ),
    "missing member": (
        "genai-service.service.json",
        _drop(*_IMAGE, "ImageIdentifier"),
        "ImageIdentifier",
    ),
    "alarm enum": (
        "gateway.alarms.json",
        _set(0, "ComparisonOperator", value="Above"),
        "ComparisonOperator",
    ),
    "list size": (
        "gateway.alarms.json",
        _set(
            1, "AlarmActions", value=[f"arn:aws:sns:eu-west-1:123456789012:t{i}" for i in range(6)]
        ),
        "AlarmActions",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_copy_fails_naming_the_member(case: str, tmp_path: Path) -> None:
    name, edit, member = BROKEN[case]
    folder = tmp_path / "apprunner"
    shutil.copytree(ROOT / "apprunner", folder)
    doc = json.loads((folder / name).read_text())
    edit(doc)
    (folder / name).write_text(json.dumps(doc))
    faults = aws.check(aws.SAMPLE_ENV, folder)
    assert faults, f"{case}: the broken copy passed"
    assert all(fault.startswith(name) for fault in faults), faults
    assert any(member in fault for fault in faults), faults


def test_an_unset_placeholder_and_an_unsent_file_are_faults(tmp_path: Path) -> None:
    env = {k: v for k, v in aws.SAMPLE_ENV.items() if k != "VPC_CONNECTOR_ARN"}
    (faults,) = aws.check(env)
    assert "set VPC_CONNECTOR_ARN" in faults
    folder = tmp_path / "apprunner"
    shutil.copytree(ROOT / "apprunner", folder)
    (folder / "extra.service.json").write_text("{}")
    (faults,) = aws.check(aws.SAMPLE_ENV, folder)
    assert "extra.service.json" in faults


def test_the_command_line_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert aws.main(["--sample"]) == 0
    assert "valid against botocore" in capsys.readouterr().out

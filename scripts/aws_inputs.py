"""The apprunner/ input files checked against botocore's own API model, offline.

`scripts/deploy` sends each apprunner/*.json file, with its `${NAME}` placeholders filled from
the environment, as `--cli-input-json` of one AWS call. This module renders them the same way
and validates every request against the operation's input shape from the service model that
ships inside botocore (no AWS account, no network): botocore's own `ParamValidator` (unknown
and missing members, types, minimum lengths and values), then the constraints of the model it
leaves to the service (enums, maximum lengths and values, patterns, list and map sizes).

    python scripts/aws_inputs.py [--sample | --env]   # exits 1 and names every fault
`--sample` (the default) fills the placeholders with well-formed sample values, as the tests
do; `--env` takes them from the environment, as `scripts/deploy` does before it calls AWS (the
values AWS has not created yet, such as the ARNs of the services, keep their sample form).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import string
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator

ROOT = Path(__file__).resolve().parents[1]
APPRUNNER = ROOT / "apprunner"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")

# Well-formed values for every placeholder, in the forms AWS gives them (12-digit account,
# resource ids, ARNs with the 6-character suffix Secrets Manager appends).
_ACCOUNT = "123456789012"
_REGION = "eu-west-1"
_SECRET = f"arn:aws:secretsmanager:{_REGION}:{_ACCOUNT}:secret:sepsis/"
_APPRUNNER = f"arn:aws:apprunner:{_REGION}:{_ACCOUNT}:"
SAMPLE_ENV: dict[str, str] = {
    "AWS_ACCOUNT_ID": _ACCOUNT,
    "AWS_REGION": _REGION,
    "IMAGE_TAG": "0123456789ab",
    "VPC_ID": "vpc-0a1b2c3d4e5f67890",
    "PRIVATE_SUBNET_A": "subnet-0a1b2c3d4e5f67890",
    "PRIVATE_SUBNET_B": "subnet-0f1e2d3c4b5a67890",
    "EGRESS_SECURITY_GROUP": "sg-0a1b2c3d4e5f67890",
    "APPRUNNER_VPC_ENDPOINT_ID": "vpce-0a1b2c3d4e5f67890",
    "ECR_ACCESS_ROLE_ARN": f"arn:aws:iam::{_ACCOUNT}:role/sepsis-apprunner-ecr-access",
    "INSTANCE_ROLE_ARN": f"arn:aws:iam::{_ACCOUNT}:role/sepsis-apprunner-instance",
    "API_KEYS_SECRET_ARN": f"{_SECRET}api-keys-AbCdEf",
    "ADMIN_API_KEYS_SECRET_ARN": f"{_SECRET}admin-api-keys-AbCdEf",
    "SERVICE_TOKEN_SECRET_ARN": f"{_SECRET}service-token-AbCdEf",
    "AZURE_OPENAI_API_KEY_SECRET_ARN": f"{_SECRET}azure-openai-api-key-AbCdEf",
    "REDIS_URL_SECRET_ARN": f"{_SECRET}redis-url-AbCdEf",
    "AZURE_OPENAI_ENDPOINT": "https://example-resource.openai.azure.com/",
    "ALARM_TOPIC_ARN": f"arn:aws:sns:{_REGION}:{_ACCOUNT}:sepsis-alarms",
    "GATEWAY_AUTOSCALING_ARN": f"{_APPRUNNER}autoscalingconfiguration/sepsis-gateway/1/"
    "0123456789abcdef0123456789abcdef",
    "ML_AUTOSCALING_ARN": f"{_APPRUNNER}autoscalingconfiguration/sepsis-ml-service/1/"
    "0123456789abcdef0123456789abcdef",
    "GENAI_AUTOSCALING_ARN": f"{_APPRUNNER}autoscalingconfiguration/sepsis-genai-service/1/"
    "0123456789abcdef0123456789abcdef",
    "VPC_CONNECTOR_ARN": f"{_APPRUNNER}vpcconnector/sepsis-egress/1/"
    "0123456789abcdef0123456789abcdef",
    "ML_SERVICE_ARN": f"{_APPRUNNER}service/sepsis-ml-service/0123456789abcdef0123456789abcdef",
    "GENAI_SERVICE_ARN": f"{_APPRUNNER}service/sepsis-genai-service/"
    "0123456789abcdef0123456789abcdef",
    "ML_SERVICE_DOMAIN": "abcdefghij.eu-west-1.awsapprunner.com",
    "GENAI_SERVICE_DOMAIN": "klmnopqrst.eu-west-1.awsapprunner.com",
    "GATEWAY_SERVICE_NAME": "sepsis-gateway",
    "GATEWAY_SERVICE_ID": "0123456789abcdef0123456789abcdef",
}


@dataclass(frozen=True)
class Request:
    """One AWS call that scripts/deploy makes with a file of apprunner/."""

    source: str
    service: str
    operation: str
    params: dict[str, Any]


def render(path: Path, env: Mapping[str, str]) -> str:
    """The file with its `${NAME}` placeholders filled, as scripts/deploy does it."""
    text = string.Template(path.read_text()).safe_substitute(env)
    left = sorted(set(_PLACEHOLDER.findall(text)))
    if left:
        raise ValueError(f"{path.name}: set {', '.join(left)}")
    return text


def as_update(create: Mapping[str, Any], service_arn: str) -> dict[str, Any]:
    """scripts/deploy's create-service input turned into update-service input."""
    update = {k: v for k, v in create.items() if k not in ("ServiceName", "Tags")}
    update["ServiceArn"] = service_arn
    return update


def requests(env: Mapping[str, str], folder: Path = APPRUNNER) -> Iterator[Request]:
    """Every call scripts/deploy makes with the files of `folder`."""
    seen: set[str] = set()

    def load(name: str) -> Any:
        seen.add(name)
        return json.loads(render(folder / name, env))

    for svc in ("gateway", "ml-service", "genai-service"):
        name = f"{svc}.autoscaling.json"
        yield Request(name, "apprunner", "CreateAutoScalingConfiguration", load(name))
    yield Request(
        "vpc-connector.json", "apprunner", "CreateVpcConnector", load("vpc-connector.json")
    )
    for svc in ("gateway", "ml-service", "genai-service"):
        name = f"{svc}.service.json"
        spec = load(name)
        yield Request(name, "apprunner", "CreateService", spec)
        arn = f"{_APPRUNNER}service/sepsis-{svc}/0123456789abcdef0123456789abcdef"
        yield Request(f"{name} (as update)", "apprunner", "UpdateService", as_update(spec, arn))
    for svc in ("ml-service", "genai-service"):
        name = f"{svc}.ingress.json"
        yield Request(name, "apprunner", "CreateVpcIngressConnection", load(name))
    alarms = load("gateway.alarms.json")
    if not isinstance(alarms, list):
        raise ValueError("gateway.alarms.json: a list of put-metric-alarm inputs")
    for index, alarm in enumerate(alarms):
        yield Request(f"gateway.alarms.json[{index}]", "cloudwatch", "PutMetricAlarm", alarm)
    unused = sorted(p.name for p in folder.glob("*.json") if p.name not in seen)
    if unused:
        raise ValueError(f"files scripts/deploy does not send: {', '.join(unused)}")


def _limits(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """The model's constraints that ParamValidator does not check (it checks `min` only)."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            yield f"{path}: {value!r} is not one of {sorted(enum)}"
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} characters, at most {meta['max']}"
        # The model's patterns are Java regular expressions matched against the whole value.
        if "pattern" in meta and re.fullmatch(meta["pattern"], value, re.S) is None:
            yield f"{path}: {value!r} does not match {meta['pattern']!r}"
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "max" in meta and value > meta["max"]:
            yield f"{path}: {value} is above the maximum {meta['max']}"
    elif isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                yield from _limits(shape.members[key], item, f"{path}.{key}")
    elif isinstance(shape, ListShape) and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} items, at most {meta['max']}"
        for index, item in enumerate(value):
            yield from _limits(shape.member, item, f"{path}[{index}]")
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} entries, at most {meta['max']}"
        for key, item in value.items():
            yield from _limits(shape.key, key, f"{path} key {key!r}")
            yield from _limits(shape.value, item, f"{path}.{key}")


@functools.cache
def _input_shape(service: str, operation: str) -> StructureShape:
    model = botocore.session.get_session().get_service_model(service)
    shape: StructureShape = model.operation_model(operation).input_shape
    return shape


def problems(request: Request) -> list[str]:
    """Every way `request` breaks its operation's input shape in botocore's model."""
    shape = _input_shape(request.service, request.operation)
    assert shape is not None, request.operation
    found: list[str] = []
    report = ParamValidator().validate(request.params, shape)
    if report.has_errors():
        found += [line.strip() for line in report.generate_report().splitlines() if line.strip()]
        found = [line for line in found if not line.startswith("Parameter validation failed")]
    found += list(_limits(shape, request.params, request.operation))
    return [f"{request.source} ({request.service} {request.operation}): {p}" for p in found]


def check(env: Mapping[str, str], folder: Path = APPRUNNER) -> list[str]:
    """Every fault of every request made with `folder`'s files; empty when all are valid."""
    try:
        return [fault for request in requests(env, folder) for fault in problems(request)]
    except (ValueError, json.JSONDecodeError) as exc:
        return [str(exc)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sample", action="store_true", help="sample values (default)")
    source.add_argument("--env", action="store_true", help="values from the environment")
    args = parser.parse_args(argv)
    env = {**SAMPLE_ENV, **os.environ} if args.env else SAMPLE_ENV
    faults = check(env)
    for fault in faults:
        sys.stderr.write(fault + "\n")
    count = sum(1 for _ in requests(env)) if not faults else 0
    sys.stdout.write(
        f"apprunner/: {count} requests valid against botocore {botocore.__version__}'s API model\n"
        if not faults
        else f"apprunner/: {len(faults)} faults\n"
    )
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())

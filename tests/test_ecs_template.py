"""The ECS Fargate template (deploy/ecs/sepsis-ecs.yaml), validated offline.

cfn-lint checks it against the CloudFormation resource specifications it ships (types,
allowed values, Fargate CPU/memory pairs, references, ...); the tests below hold what the
deployment must be: only the gateway public, the services found privately, secrets from
Secrets Manager, genai-service scaled on its own metric, and the same images, ports, probes
and stop timeouts as the Dockerfiles.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str

from sepsis_genai.app import create_app as genai_app
from sepsis_genai.config import GenAISettings
from sepsis_shared.logs import JsonFormatter
from sepsis_shared.patient import STRUCTURED_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "ecs" / "sepsis-ecs.yaml"
REGIONS = ["eu-west-1"]
SERVICES = {  # ECS service resource -> (task resource, container, port, probe path)
    "GatewayService": ("GatewayTask", "gateway", 8000, "/health"),
    "MLService": ("MLTask", "ml-service", 8001, "/readyz"),
    "GenAIService": ("GenAITask", "genai-service", 8002, "/readyz"),
}


def _lint(text: str) -> list[str]:
    matches = lint(text, config=ManualArgs(regions=REGIONS))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


def _template() -> dict[str, Any]:
    template, errors = decode_str(TEMPLATE.read_text())
    assert not errors, errors
    assert isinstance(template, dict)
    return template


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = _template()["Resources"]
    return resources


def _container(task: str) -> dict[str, Any]:
    (container,) = _resources()[task]["Properties"]["ContainerDefinitions"]
    assert isinstance(container, dict)
    return container


def test_cfn_lint_passes() -> None:
    assert _lint(TEMPLATE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ('Cpu: "1024"', 'Cpu: "1000"', "E3048"),  # not a Fargate CPU size
        ("LaunchType: FARGATE", "LaunchType: FARGATTE", "E3030"),  # not an allowed value
        ("TargetType: ip", "TargetTipe: ip", "E3002"),  # no such property
        ("!GetAtt MLDiscovery.Arn", "!GetAtt MLDiscovery.Nope", "E1010"),  # no such attribute
    ],
)
def test_cfn_lint_fails_a_broken_copy(old: str, new: str, rule: str) -> None:
    text = TEMPLATE.read_text()
    assert old in text
    faults = _lint(text.replace(old, new, 1))
    assert any(fault.startswith(rule) for fault in faults), faults


def test_only_the_gateway_is_public() -> None:
    resources = _resources()
    balancers = [r for r in resources.values() if r["Type"].endswith("::LoadBalancer")]
    assert len(balancers) == 1
    assert balancers[0]["Properties"]["Scheme"] == "internet-facing"
    services = {k: v for k, v in resources.items() if v["Type"] == "AWS::ECS::Service"}
    assert set(services) == set(SERVICES)
    for name, service in services.items():
        props = service["Properties"]
        assert props["LaunchType"] == "FARGATE"
        network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED", name
        assert network["Subnets"] == {"Ref": "PrivateSubnetIds"}, name
        assert ("LoadBalancers" in props) is (name == "GatewayService"), name
        # a new image that never turns healthy is rolled back
        assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
            "Enable": True,
            "Rollback": True,
        }
    listener = resources["HttpsListener"]["Properties"]
    assert listener["Protocol"] == "HTTPS"
    assert listener["DefaultActions"][0]["TargetGroupArn"] == {"Ref": "GatewayTargetGroup"}
    # the services accept only the gateway's security group
    for group, port in (("MLSecurityGroup", 8001), ("GenAISecurityGroup", 8002)):
        (rule,) = resources[group]["Properties"]["SecurityGroupIngress"]
        assert rule["SourceSecurityGroupId"] == {"Ref": "GatewaySecurityGroup"}
        assert rule["FromPort"] == rule["ToPort"] == port


def test_the_gateway_finds_the_services_through_cloud_map() -> None:
    resources = _resources()
    namespace = resources["Namespace"]["Properties"]["Name"]
    env = {e["Name"]: e["Value"] for e in _container("GatewayTask")["Environment"]}
    for service, discovery, port in (
        ("MLService", "MLDiscovery", 8001),
        ("GenAIService", "GenAIDiscovery", 8002),
    ):
        (registry,) = resources[service]["Properties"]["ServiceRegistries"]
        assert registry["RegistryArn"] == {"Fn::GetAtt": [discovery, "Arn"]}
        host = f"{resources[discovery]['Properties']['Name']}.{namespace}"
        var = "ML_SERVICE_URL" if service == "MLService" else "GENAI_SERVICE_URL"
        assert env[var] == f"http://{host}:{port}"


def test_secrets_come_from_secrets_manager_only() -> None:
    resources = _resources()
    expected = {
        "GatewayTask": {"API_KEYS", "ADMIN_API_KEYS", "SERVICE_TOKEN"},
        "MLTask": {"SERVICE_TOKEN"},
        "GenAITask": {"SERVICE_TOKEN", "AZURE_OPENAI_API_KEY"},
    }
    for task, names in expected.items():
        container = _container(task)
        secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
        assert set(secrets) == names, task
        for ref in secrets.values():
            assert resources[ref["Ref"]]["Type"] == "AWS::SecretsManager::Secret"
        for entry in container["Environment"]:
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", entry["Name"]), entry["Name"]
    # generated secrets pass the services' own checks: long, letters and digits (no comma)
    for resource in resources.values():
        if resource["Type"] == "AWS::SecretsManager::Secret":
            generate = resource["Properties"]["GenerateSecretString"]
            assert generate["PasswordLength"] >= 32
            assert generate["ExcludePunctuation"] is True


def _dockerfile(service: str) -> str:
    return (ROOT / service / "Dockerfile").read_text()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_tasks_run_the_images_as_the_dockerfiles_build_them(service: str) -> None:
    task, name, port, probe = SERVICES[service]
    container = _container(task)
    assert container["Image"] == {
        "Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/"
        f"sepsis-{name}:${{ImageTag}}"
    }
    assert container["PortMappings"] == [{"ContainerPort": port, "Protocol": "tcp"}]
    assert f"EXPOSE {port}\n" in _dockerfile(name)
    assert container["User"] == "10001:10001"
    assert "USER 10001:10001\n" in _dockerfile(name)
    assert container["ReadonlyRootFilesystem"] is True
    command = container["HealthCheck"]["Command"]
    assert command[0] == "CMD-SHELL"
    assert f"http://127.0.0.1:{port}{probe}" in command[1]
    graceful = re.search(r'"--timeout-graceful-shutdown", "(\d+)"', _dockerfile(name))
    assert graceful is not None
    assert container["StopTimeout"] > int(graceful.group(1))
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_each_service_scales_on_its_own_and_genai_on_its_own_metric() -> None:
    resources = _resources()
    targets = {
        k: v["Properties"]["ResourceId"]["Fn::Sub"]
        for k, v in resources.items()
        if v["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    }
    assert targets == {
        "GatewayScaling": "service/${Cluster}/${GatewayService.Name}",
        "MLScaling": "service/${Cluster}/${MLService.Name}",
        "GenAIScaling": "service/${Cluster}/${GenAIService.Name}",
    }
    policy = resources["GenAIScalingPolicy"]["Properties"]
    assert policy["ScalingTargetId"] == {"Ref": "GenAIScaling"}
    metrics = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    by_id = {m["Id"]: m for m in metrics["Metrics"]}
    assert by_id["requests"]["MetricStat"]["Metric"]["MetricName"] == "GenAIRequests"
    dims = by_id["tasks"]["MetricStat"]["Metric"]["Dimensions"]
    assert {"Name": "ServiceName", "Value": {"Fn::GetAtt": ["GenAIService", "Name"]}} in dims
    (transform,) = resources["GenAIRequestMetric"]["Properties"]["MetricTransformations"]
    assert transform["MetricName"] == "GenAIRequests"


def _matches_filter(line: dict[str, Any], pattern: str) -> bool:
    """CloudWatch Logs' JSON filter for the form used here: `$.field = "value"` terms joined
    by `&&`, a trailing `*` matching any rest of the value."""
    terms = re.findall(r'\$\.(\w+) = "([^"]*)"', pattern)
    assert terms
    assert pattern.count("&&") == len(terms) - 1
    for field, want in terms:
        got = line.get(field)
        if not isinstance(got, str):
            return False
        if want.endswith("*") and not got.startswith(want[:-1]):
            return False
        if not want.endswith("*") and got != want:
            return False
    return True


async def test_the_genai_metric_counts_the_access_lines_genai_service_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pattern = _resources()["GenAIRequestMetric"]["Properties"]["FilterPattern"]
    token = "ecs-template-test-token-0123456789"
    settings = GenAISettings.model_validate(
        {"SERVICE_TOKEN": token, "LLM_PROVIDER": "offline", "GENAI_CACHE_ENABLED": "false"}
    )
    app = genai_app(settings)
    caplog.set_level(logging.INFO, logger="sepsis_genai.access")
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://genai", headers={"X-Service-Token": token}
        ) as client:
            assert (await client.post("/genai-classify", json=STRUCTURED_EXAMPLE)).is_success
            batch = {"patients": [STRUCTURED_EXAMPLE, STRUCTURED_EXAMPLE]}
            assert (await client.post("/genai-classify-batch", json=batch)).is_success
            assert (await client.get("/readyz")).is_success
    formatter = JsonFormatter(service="genai-service")
    lines = [
        json.loads(formatter.format(r)) for r in caplog.records if r.name == "sepsis_genai.access"
    ]
    counted = [line["route"] for line in lines if _matches_filter(line, pattern)]
    assert counted == ["/genai-classify", "/genai-classify-batch"]

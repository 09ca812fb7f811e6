"""`scripts/deploy --dry-run` for both targets: it checks the inputs, validates what it would
send (offline) and prints the commands, and it calls neither AWS nor a container engine."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "scripts" / "deploy"

ECS_ENV = {
    "AWS_REGION": "eu-west-1",
    "VPC_ID": "vpc-0a1b2c3d4e5f67890",
    "PUBLIC_SUBNET_IDS": "subnet-0a1b2c3d4e5f67890,subnet-0f1e2d3c4b5a67890",
    "PRIVATE_SUBNET_IDS": "subnet-01234567890abcdef,subnet-0fedcba9876543210",
    "CERTIFICATE_ARN": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f",
    "IMAGE_TAG": "0123456789ab",
}
APPRUNNER_REQUIRED = [
    "AWS_REGION",
    "VPC_ID",
    "PRIVATE_SUBNET_A",
    "PRIVATE_SUBNET_B",
    "EGRESS_SECURITY_GROUP",
    "APPRUNNER_VPC_ENDPOINT_ID",
    "ECR_ACCESS_ROLE_ARN",
    "INSTANCE_ROLE_ARN",
    "API_KEYS_SECRET_ARN",
    "ADMIN_API_KEYS_SECRET_ARN",
    "SERVICE_TOKEN_SECRET_ARN",
    "AZURE_OPENAI_API_KEY_SECRET_ARN",
    "REDIS_URL_SECRET_ARN",
    "AZURE_OPENAI_ENDPOINT",
    "ALARM_TOPIC_ARN",
]


def _aws_inputs() -> ModuleType:
    name = "sepsis_aws_inputs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "aws_inputs.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def trap_bin(tmp_path: Path) -> Path:
    """`aws`, `docker` and `podman` that record being called and fail: a dry run must not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("aws", "docker", "podman"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/called"\nexit 99\n')
        script.chmod(0o755)
    return bin_dir


def _run(args: list[str], env: dict[str, str], trap_bin: Path) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    keep["PATH"] = f"{trap_bin}{os.pathsep}{keep['PATH']}"
    return subprocess.run(
        [str(DEPLOY), *args],
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def test_ecs_dry_run_validates_and_prints_the_stack_deploy(trap_bin: Path) -> None:
    result = _run(["--target", "ecs", "--dry-run"], ECS_ENV, trap_bin)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "cfn-lint" in out
    assert "aws cloudformation deploy --stack-name sepsis-early-warning" in out
    assert "ImageTag=0123456789ab" in out
    for svc in ("gateway", "ml-service", "genai-service"):
        assert f"sepsis-{svc}:0123456789ab" in out
    assert not (trap_bin.parent / "called").exists(), (trap_bin.parent / "called").read_text()


def test_apprunner_dry_run_validates_the_inputs_against_botocore(trap_bin: Path) -> None:
    sample = _aws_inputs().SAMPLE_ENV
    env = {name: sample[name] for name in APPRUNNER_REQUIRED}
    result = _run(["--target=apprunner", "--dry-run", "--no-build"], env, trap_bin)
    assert result.returncode == 0, result.stderr
    assert "valid against botocore" in result.stdout
    assert not (trap_bin.parent / "called").exists()
    # the same inputs with a malformed one: refused before anything is sent
    env["INSTANCE_ROLE_ARN"] = "not-an-arn"
    bad = _run(["--target", "apprunner", "--dry-run", "--no-build"], env, trap_bin)
    assert bad.returncode != 0
    assert "InstanceRoleArn" in bad.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], ECS_ENV, "--target ecs or --target apprunner"),
        (["--target", "k8s"], ECS_ENV, "--target ecs or --target apprunner"),
        (["--target", "ecs", "--dry-run"], {"AWS_REGION": "eu-west-1"}, "set VPC_ID"),
        (["--target", "ecs", "--bogus"], ECS_ENV, "unknown argument: --bogus"),
    ],
)
def test_bad_invocations_say_what_is_wrong(
    trap_bin: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = _run(args, env, trap_bin)
    assert result.returncode == 2
    assert message in result.stderr

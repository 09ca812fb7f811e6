"""The local OpenAI-compatible server run as a separate process and driven over HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def fake_process(*args: str) -> AsyncIterator[str]:
    """Start the server as a process; yields its origin, stops it afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        info = json.loads(line)
        yield str(info["listening"])
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_scripted_over_admin_endpoints_from_another_process() -> None:
    async with (
        fake_process("-m", "tests.fakes.fake_openai", "--port", "0") as origin,
        httpx.AsyncClient(base_url=origin, timeout=10) as admin,
    ):
        scripted = await admin.post(
            "/_admin/script",
            json={
                "behaviours": [
                    {"kind": "status", "status": 429, "retry_after": 7},
                    {"kind": "answer", "answer": {"risk_score": 12, "priority": "Standard"}},
                ]
            },
        )
        assert scripted.json()["queued"] == 2
        llm = openai.AsyncOpenAI(
            api_key="fake-llm-key", base_url=f"{origin}/v1", max_retries=0, timeout=10
        )
        try:
            with pytest.raises(openai.RateLimitError) as limited:
                await llm.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hello"}]
                )
            reply = await llm.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hello"}],
                response_format={"type": "json_object"},
            )
        finally:
            await llm.close()
        stats = (await admin.get("/_admin/stats")).json()
        recorded = (await admin.get("/_admin/requests")).json()
        await admin.post("/_admin/reset")
        after_reset = (await admin.get("/_admin/stats")).json()
        bad = await admin.post("/_admin/script", json={"behaviours": [{"kind": "explode"}]})
    assert limited.value.response.headers["retry-after"] == "7"
    content = reply.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"risk_score": 12, "priority": "Standard"}
    assert stats["calls"] == 2
    assert [r["answered_status"] for r in recorded] == [429, 200]
    assert recorded[1]["body"]["response_format"] == {"type": "json_object"}
    assert after_reset["calls"] == 0
    assert bad.status_code == 400


async def test_runs_as_a_script_with_a_latency_and_the_azure_shape() -> None:
    async with (
        fake_process("tests/fakes/fake_openai.py", "--port", "0", "--latency", "0.2") as origin,
        httpx.AsyncClient(base_url=origin, timeout=10) as admin,
    ):
        azure = openai.AsyncAzureOpenAI(
            api_key="fake-llm-key",
            azure_endpoint=origin,
            api_version="2024-06-01",
            max_retries=0,
            timeout=10,
        )
        try:
            reply = await azure.chat.completions.create(
                model="my-deployment",
                messages=[{"role": "user", "content": "hello"}],
                response_format={"type": "json_object"},
            )
            with pytest.raises(openai.AuthenticationError):
                await azure.chat.completions.create(
                    model="my-deployment",
                    messages=[{"role": "user", "content": "hello"}],
                    extra_headers={"api-key": "wrong"},
                )
        finally:
            await azure.close()
        stats = (await admin.get("/_admin/stats")).json()
        recorded = (await admin.get("/_admin/requests")).json()
    assert stats["latency_s"] == 0.2
    assert reply.model == "my-deployment"
    assert json.loads(reply.choices[0].message.content or "")["priority"] in (
        "Standard",
        "Elevated",
        "Urgent",
    )
    assert recorded[0]["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert recorded[0]["api_version"] == "2024-06-01"

"""Sends real ecosystem telemetry to a running `modelshare serve` and checks what arrived.

- OpenTelemetry Python SDK + OTLP/HTTP protobuf exporter (gzip): two GenAI spans with known
  token counts and one plain span that must be ignored.
- LiteLLM (if importable): two `litellm.completion(..., mock_response=...)` calls, no network,
  logged through LiteLLM's generic HTTP logging callback to POST /v1/litellm.

Figures are read back with POST /v1/sql (admin key) and compared exactly.
Usage: otel_check.py URL INGEST_KEY ADMIN_KEY
"""

import json
import os
import sys
import time
import urllib.request

url, ingest_key, admin_key = sys.argv[1], sys.argv[2], sys.argv[3]


def sql(query):
    req = urllib.request.Request(
        f"{url}/v1/sql",
        data=json.dumps({"sql": query}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_key}"},
    )
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["rows"]


def check(label, got, want):
    if got != want:
        print(f"FAIL {label}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"ok   {label}: {got!r}")


# ---- OpenTelemetry SDK -------------------------------------------------------------------------
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

exporter = OTLPSpanExporter(
    endpoint=f"{url}/v1/traces",
    headers={"Authorization": f"Bearer {ingest_key}"},
    compression=Compression.Gzip,
)
provider = TracerProvider(resource=Resource.create({"service.name": "otel-check"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("modelshare-otel-check")

with tracer.start_as_current_span("chat gpt-4o") as s:
    s.set_attribute("gen_ai.operation.name", "chat")
    s.set_attribute("gen_ai.provider.name", "openai")
    s.set_attribute("gen_ai.request.model", "gpt-4o")
    s.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
    s.set_attribute("gen_ai.usage.input_tokens", 1234)
    s.set_attribute("gen_ai.usage.output_tokens", 567)
    s.set_attribute("gen_ai.response.finish_reasons", ["stop"])
    s.set_attribute("modelshare.task", "programming")
with tracer.start_as_current_span("chat claude") as s:
    s.set_attribute("gen_ai.system", "anthropic")
    s.set_attribute("gen_ai.request.model", "claude-sonnet-4.5")
    s.set_attribute("gen_ai.usage.input_tokens", 4000)
    s.set_attribute("gen_ai.usage.output_tokens", 250)
    s.set_attribute("error.type", "timeout")
    s.set_status(Status(StatusCode.ERROR, "upstream timed out"))
with tracer.start_as_current_span("GET /health"):
    pass
provider.force_flush()
provider.shutdown()

rows = sql(
    "SELECT model, provider, app_id, task, input_tokens, output_tokens, status "
    "FROM events WHERE app_id = 'otel-app' ORDER BY input_tokens"
)
check(
    "otel spans stored",
    [(r["model"], r["provider"], r["task"], r["input_tokens"], r["output_tokens"], r["status"]) for r in rows],
    [
        ("openai/gpt-4o", "openai", "programming", 1234, 567, "ok"),
        ("anthropic/claude-sonnet-4.5", "anthropic", "other", 4000, 250, "timeout"),
    ],
)
with urllib.request.urlopen(f"{url}/metrics") as resp:
    metrics = resp.read().decode()
ignored = [l for l in metrics.splitlines() if l.startswith("modelshare_telemetry_ignored_total ")]
check("non-GenAI span ignored and counted", ignored, ["modelshare_telemetry_ignored_total 1"])

# ---- LiteLLM -----------------------------------------------------------------------------------
try:
    import litellm
except Exception as e:  # noqa: BLE001 - report and skip: litellm is optional
    print(f"skip litellm: not importable ({e})")
    sys.exit(0)

import asyncio

from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger


async def litellm_calls():
    logger = GenericAPILogger(
        endpoint=f"{url}/v1/litellm", headers={"Authorization": f"Bearer {ingest_key}"}
    )
    litellm.callbacks = [logger]
    usages = []
    for text in ["print('hello')", "def add(a, b): return a + b"]:
        r = await litellm.acompletion(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"Explain: {text}"}],
            mock_response=f"It is Python: {text}",
            metadata={"tags": ["task:programming"]},
        )
        usages.append((r.usage.prompt_tokens, r.usage.completion_tokens))
    # Success logging runs in background tasks; wait for both payloads, then flush the batch.
    for _ in range(100):
        if len(logger.log_queue) >= len(usages):
            break
        await asyncio.sleep(0.05)
    if os.environ.get("LITELLM_CAPTURE"):
        with open(os.environ["LITELLM_CAPTURE"], "w") as f:
            json.dump(list(logger.log_queue), f, indent=1, default=str)
    await logger.async_send_batch()
    return usages


usages = asyncio.run(litellm_calls())
want = sorted(usages)
rows = sql(
    "SELECT input_tokens, output_tokens, model, provider, task FROM events "
    "WHERE app_id = 'otel-app' AND event_id LIKE 'chatcmpl-%' "
    "ORDER BY input_tokens, output_tokens"
)
check("litellm calls stored", sorted((r["input_tokens"], r["output_tokens"]) for r in rows), want)
check("litellm model", sorted({r["model"] for r in rows}), ["openai/gpt-4o"])
check("litellm task from metadata", sorted({r["task"] for r in rows}), ["programming"])
print("otel-check: all checks passed")

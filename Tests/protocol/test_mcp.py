"""`selfanchor serve --mcp` driven by the official MCP Python SDK (`mcp` on PyPI) over stdio, as a coding
agent would: the handshake, the tool list (schemas as Protocol/schema publishes them), a solve on the test
model with progress, a tool failure, an unknown tool, a cancelled call, ping. Every message the daemon
sent is logged through `tee` and checked against the SDK's own message types afterwards."""
import json
import os
import pathlib
import sys

import anyio
import pytest
from pydantic import TypeAdapter

mcp = pytest.importorskip("mcp")
from mcp import Client, MCPError, StdioServerParameters  # noqa: E402
import mcp_types  # noqa: E402

from conftest import ROOT, daemon_binary  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import mcp_tool_schemas  # noqa: E402

QUESTION = "A farmer has 12 cows and buys 7 more. Then 4 cows are sold. How many cows are left?"


def server(tmp_path):
    log = tmp_path / "daemon-stdout.jsonl"
    command = (f'"{daemon_binary()}" serve --mcp --model test --parallel 2 --context-size 2048 '
               f'2>"{tmp_path / "daemon-stderr.log"}" | tee "{log}"')
    params = StdioServerParameters(command="sh", args=["-c", command],
                                   env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    return params, log


def test_an_mcp_client_lists_calls_streams_and_cancels(tmp_path):
    params, log = server(tmp_path)
    seen = {}

    async def scenario():
        async with Client(params, read_timeout_seconds=300) as client:
            # The SDK probes server/discover first (answered -32601) and falls back to initialize.
            assert client.session.protocol_version in ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
            assert client.session.server_info.name == "selfanchor"
            assert "solve" in (client.session.instructions or "")
            await client.session.send_ping()

            listed = await client.list_tools()
            tools = {tool.name: tool for tool in listed.tools}
            assert sorted(tools) == ["analyze", "solve"]
            published = {tool["name"]: tool for tool in mcp_tool_schemas.tools()}
            for name, tool in tools.items():
                assert tool.input_schema == published[name]["inputSchema"]
                assert tool.output_schema == published[name]["outputSchema"]
            assert "stream" not in tools["solve"].input_schema["properties"]

            # A solve with progress: each plan, step and the answer as they are written.
            progress = []

            async def on_progress(value, total, message):
                progress.append((value, message))

            result = await client.call_tool("solve", {"question": QUESTION, "options": {"maxTokens": 80, "maxSteps": 3}},
                                            progress_callback=on_progress)
            assert not result.is_error
            solved = result.structured_content
            assert solved["strategy"] == "self-anchor" and solved["question"] == QUESTION
            assert result.content[0].type == "text" and result.content[0].text.startswith(solved["text"].strip()[:20])
            lines = [f"Plan {s['plan']['index']}: {s['plan']['text']}" for s in solved["steps"] if s["plan"]]
            assert [v for v, _ in progress] == list(range(1, len(progress) + 1)), "progress only goes up"
            messages = [m for _, m in progress]
            assert all(line in messages for line in lines), (lines, messages)
            assert any(m.startswith("Step ") for m in messages) and messages[-1].startswith("Answer: ")

            # A baseline strategy, and analyze, through the same tools.
            cot = await client.call_tool("solve", {"question": QUESTION, "strategy": "cot", "options": {"maxTokens": 30}})
            assert not cot.is_error and cot.structured_content["strategy"] == "cot"
            analysed = await client.call_tool("analyze", {"question": QUESTION, "text": "19 minus 4 is 15 cows."})
            assert not analysed.is_error and analysed.structured_content["responseTokens"] > 3
            assert "anchor tokens" in analysed.content[0].text

            # A failure of the tool is a result with isError; an unknown tool is a protocol error.
            failed = await client.call_tool("solve", {"question": "   "})
            assert failed.is_error and "arguments.question" in failed.content[0].text
            failed = await client.call_tool("solve", {"question": "x", "options": {"omega": "strong"}})
            assert failed.is_error and "arguments.options.omega" in failed.content[0].text
            with pytest.raises(MCPError) as unknown:
                await client.call_tool("nope", {})
            assert unknown.value.error.code == -32602 and "unknown tool" in unknown.value.error.message

            # Cancelling: the caller gives up after the first progress; the daemon stops and does not answer.
            first = anyio.Event()

            async def on_first(value, total, message):
                first.set()

            async with anyio.create_task_group() as group:
                async def long_call():
                    await client.call_tool("solve", {"question": QUESTION, "options": {"maxTokens": 2000, "maxSteps": 64}},
                                           progress_callback=on_first)
                    seen["finished"] = True

                group.start_soon(long_call)
                with anyio.fail_after(120):
                    await first.wait()
                group.cancel_scope.cancel()
            assert "finished" not in seen
            # The daemon serves the next call normally.
            again = await client.call_tool("solve", {"question": "What is 2 + 3?", "strategy": "plain",
                                                     "options": {"maxTokens": 10}})
            assert not again.is_error

    anyio.run(scenario)

    # Every message the daemon wrote is one JSON-RPC message per line that the SDK's types accept.
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert sent, "the daemon wrote messages"
    envelope = TypeAdapter(mcp_types.JSONRPCMessage)
    for message in sent:
        envelope.validate_python(message)  # raises on anything malformed
        if "method" in message:
            assert message["method"] == "notifications/progress", "the only notifications are progress"
            mcp_types.ProgressNotification.model_validate(message)
    responses = {m["id"] for m in sent if "id" in m and ("result" in m or "error" in m)}
    tokens = {m["params"]["progressToken"] for m in sent if m.get("method") == "notifications/progress"}
    unanswered = tokens - responses
    assert len(unanswered) == 1, f"exactly the cancelled call is unanswered: {unanswered}"
    discover = [m for m in sent if m.get("error", {}).get("code") == -32601]
    assert discover, "server/discover is answered as an unknown method"
    stderr = (tmp_path / "daemon-stderr.log").read_text()
    assert "Traceback" not in stderr and "fatal" not in stderr.lower()

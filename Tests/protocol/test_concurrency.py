"""Concurrent requests against the real daemon: they decode together (their events interleave and
server/status lists them all as running), each gets its own complete answer, a cancel stops only its
own request, and requests beyond --parallel wait in the queue."""
import json
import os
import subprocess

import pytest

from conftest import daemon_binary
from daemon import Daemon

QUESTIONS = [
    "A farmer has 12 cows and buys 7 more. How many cows does he have?",
    "Tom has 3 boxes with 4 pens each. How many pens does he have?",
    "A train travels 60 km in one hour. How far does it go in 3 hours?",
]


def solve(daemon, request_id, question, max_tokens=40):
    daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "solve",
                 "params": {"question": question, "stream": True, "options": {"maxTokens": max_tokens}}})


def collect(daemon, ids, on_message=None):
    """Reads until every id in `ids` is answered; returns (responses by id, the messages in order)."""
    responses, order = {}, []
    while len(responses) < len(ids):
        message = daemon.next(timeout=300)
        order.append(message)
        if on_message:
            on_message(message)
        if "method" not in message and message.get("id") in ids:
            responses[message["id"]] = message
    return responses, order


@pytest.mark.parametrize("framing", ["ndjson"])
def test_concurrent_solves_decode_together(framing):
    daemon = Daemon(daemon_binary(), framing, ["--parallel", "3"])
    try:
        daemon.initialize()
        for index, question in enumerate(QUESTIONS):
            solve(daemon, f"q{index}", question)
        status = {}

        def ask_status(message):
            # Once every request has produced text, all three must be running at once.
            if message.get("method") == "selfanchor/event" and message["params"]["event"]["event"] == "plan_delta" \
                    and not status.get("asked"):
                status["asked"] = True
                daemon.send({"jsonrpc": "2.0", "id": "st", "method": "server/status"})
            if message.get("id") == "st":
                status["result"] = message["result"]

        responses, order = collect(daemon, {"q0", "q1", "q2"}, ask_status)
        for index in range(3):
            result = responses[f"q{index}"]["result"]
            assert result["question"] == QUESTIONS[index]
            assert result["text"].startswith("Plan:\n1.")
            assert result["timings"]["predicted_n"] > 0
        # Interleaved: some request streamed text after another one's first text and before its answer.
        deltas = [m["params"]["id"] for m in order
                  if m.get("method") == "selfanchor/event" and m["params"]["event"]["event"].endswith("_delta")]
        switches = sum(1 for a, b in zip(deltas, deltas[1:]) if a != b)
        assert switches >= 3, f"events did not interleave: {deltas}"
        if "result" not in status:
            collect(daemon, {"st"}, ask_status)
        running = [job for job in status["result"]["inFlight"] if job["state"] == "running"]
        assert len(running) == 3, status["result"]
    finally:
        daemon.kill()


def test_cancel_stops_only_its_own_request():
    daemon = Daemon(daemon_binary(), "ndjson", ["--parallel", "2"])
    try:
        daemon.initialize()
        solve(daemon, "keep", QUESTIONS[0], max_tokens=40)
        solve(daemon, "stop", QUESTIONS[1], max_tokens=400)

        def cancel_on_first_text(message):
            if message.get("method") == "selfanchor/event" and message["params"]["id"] == "stop" \
                    and message["params"]["event"]["event"].endswith("_delta"):
                daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "stop"}})

        responses, _ = collect(daemon, {"keep", "stop"}, cancel_on_first_text)
        assert responses["stop"]["error"]["code"] == -32800
        assert responses["stop"]["error"]["data"]["partial"]["timings"]["predicted_n"] < 400
        assert responses["keep"]["result"]["timings"]["predicted_n"] > 0
        assert responses["keep"]["result"]["timings"]["stop_reason"] != "cancelled"
    finally:
        daemon.kill()


def test_requests_beyond_parallel_wait_in_the_queue():
    daemon = Daemon(daemon_binary(), "ndjson", ["--parallel", "2"])
    try:
        daemon.initialize()
        for index in range(4):
            solve(daemon, f"r{index}", QUESTIONS[index % 3], max_tokens=30)
        daemon.send({"jsonrpc": "2.0", "id": "st", "method": "server/status"})
        responses, _ = collect(daemon, {"r0", "r1", "r2", "r3", "st"})
        states = [job["state"] for job in responses["st"]["result"]["inFlight"]]
        assert len(states) == 4 and states.count("running") <= 2, states
        assert all("result" in responses[f"r{index}"] for index in range(4))
    finally:
        daemon.kill()


def piped_session(messages, args=("--parallel", "2")):
    """Everything sent at once, stdin closed, as a shell script would; returns (messages, exit status)."""
    process = subprocess.run([daemon_binary(), "serve", "--model", "test", "--framing", "ndjson", *args],
                             input="".join(json.dumps(m) + "\n" for m in messages), capture_output=True, text=True,
                             timeout=600, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    return [json.loads(line) for line in process.stdout.splitlines()], process.returncode


def test_shutdown_and_exit_sent_at_once_lose_nothing():
    question = "A farmer has 12 cows and buys 7 more. How many cows?"
    sent = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "model/load", "params": {"model": "test"}},
            {"jsonrpc": "2.0", "id": 3, "method": "solve", "params": {"question": question, "stream": False,
                                                                       "options": {"maxTokens": 40}}},
            {"jsonrpc": "2.0", "id": 4, "method": "shutdown"},
            {"jsonrpc": "2.0", "method": "exit"}]
    received, status = piped_session(sent)
    answers = [m for m in received if "id" in m]
    assert status == 0
    assert [m["id"] for m in answers][-1] == 4 and answers[-1]["result"] is None, "shutdown answers last"
    by_id = {m["id"]: m for m in answers}
    assert "result" in by_id[2], by_id[2]
    assert "result" in by_id[3] and by_id[3]["result"]["answer"] is not None, by_id[3]
    # Five solves, then shutdown and exit: five results, none cancelled.
    sent = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}]
    sent += [{"jsonrpc": "2.0", "id": 10 + k, "method": "solve",
              "params": {"question": question, "strategy": "cot", "stream": False, "options": {"maxTokens": 20}}}
             for k in range(5)]
    sent += [{"jsonrpc": "2.0", "id": 20, "method": "shutdown"}, {"jsonrpc": "2.0", "method": "exit"}]
    received, status = piped_session(sent)
    results = [m for m in received if m.get("id") in range(10, 15)]
    assert status == 0 and len(results) == 5 and all("result" in m for m in results), results
    assert received[-1] == {"jsonrpc": "2.0", "id": 20, "result": None}


def test_exit_without_shutdown_cancels_and_fails():
    question = "A farmer has 12 cows and buys 7 more. How many cows?"
    sent = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "solve", "params": {"question": question, "stream": False,
                                                                       "options": {"maxTokens": 2000}}},
            {"jsonrpc": "2.0", "method": "exit"}]
    received, status = piped_session(sent)
    assert status == 1
    solve = [m for m in received if m.get("id") == 2]
    assert not solve or solve[0]["error"]["code"] == -32800

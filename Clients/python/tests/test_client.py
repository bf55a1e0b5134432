"""The Python clients against the real daemon on the SmolLM2 test model."""
import asyncio
import threading
import time

import pytest

from selfanchor import AsyncClient, Client, InvalidParams, ModelNotLoaded, RequestCancelled

QUESTION = "A farmer has 12 cows and buys 7 more. How many cows does he have?"


@pytest.fixture(scope="module")
def client():
    with Client(model="test") as client:
        yield client


def test_initialize_reports_the_model(client):
    assert client.server_info["model"]["name"] == "test"
    assert "self-anchor" in client.server_info["capabilities"]["strategies"]


def test_solve_streams_events_then_returns_the_result(client):
    events = []
    result = client.solve(QUESTION, strategy="self-anchor", options={"maxTokens": 80, "maxSteps": 2}, on_event=events.append)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert "plan" in kinds and "reason" in kinds and "answer" in kinds
    assert result["strategy"] == "self-anchor"
    assert result["steps"][0]["plan"]["text"] == next(e for e in events if e["event"] == "plan")["text"]


def test_solve_stream_iterator(client):
    events = list(client.solve_stream(QUESTION, strategy="cot", options={"maxTokens": 20}))
    text = "".join(e["text"] for e in events if e["event"] == "text_delta")
    assert text.strip()
    assert client.last_result["text"].strip() == text.strip()


def test_analyze_a_solve_result(client):
    result = client.solve(QUESTION, strategy="self-anchor", options={"maxTokens": 40, "maxSteps": 1})
    analysis = client.analyze(result=result, options={"waadWindow": 5})
    tokens = analysis["tokens"]
    assert "".join(t["text"] for t in tokens) == result["text"]
    assert analysis["promptTokens"] == result["timings"]["prompt_n"]
    assert all(0 <= t["waad"] <= 5 for t in tokens)
    assert analysis["anchorCount"] == sum(t["anchor"] for t in tokens) > 0
    with pytest.raises(InvalidParams) as error:
        client.analyze(text="x", options={"alpha": 2})
    assert error.value.data["field"] == "params.options.alpha"


def test_typed_errors(client):
    with pytest.raises(InvalidParams) as error:
        client.solve(QUESTION, options={"omega": "high"})
    assert error.value.data["field"] == "params.options.omega"


def test_cancel_from_another_thread(client):
    request_id, box = client.start("solve", {"question": QUESTION, "strategy": "cot", "stream": True,
                                             "options": {"maxTokens": 3000, "temperature": 4.0, "seed": 3}})
    first = box.get(timeout=120)
    assert first[0] == "event"
    threading.Timer(0.2, client.cancel, [request_id]).start()
    with pytest.raises(RequestCancelled) as error:
        client._finish(request_id, box, timeout=120)
    assert error.value.partial["timings"]["stop_reason"] == "cancelled"


def test_breaking_out_of_a_stream_cancels_it(client):
    stream = client.solve_stream(QUESTION, strategy="cot", options={"maxTokens": 3000, "temperature": 4.0, "seed": 5})
    for event in stream:
        if event["event"] == "text_delta":
            break
    stream.close()
    # The cancel takes effect within a decode step; the request then leaves the server's books.
    deadline = time.monotonic() + 10
    status = client.status()
    while status["inFlight"] and time.monotonic() < deadline:
        time.sleep(0.1)
        status = client.status()
    assert status["inFlight"] == []


def test_asyncio_client():
    async def main():
        client = await AsyncClient.start(model="test")
        try:
            events = [e async for e in client.solve_stream(QUESTION, strategy="plain", options={"maxTokens": 10})]
            assert events[0]["event"] == "start" and events[-1]["event"] == "end"
            assert client.last_result["strategy"] == "plain"
            result = await client.solve(QUESTION, strategy="cot", options={"maxTokens": 8})
            assert result["timings"]["predicted_n"] <= 8
        finally:
            assert await client.close() == 0
    asyncio.run(main())


def test_asyncio_client_runs_requests_concurrently():
    async def main():
        client = await AsyncClient.start(model="test")
        try:
            questions = [QUESTION, "What is 6 times 7?", "A box holds 5 pens. How many pens are in 3 boxes?"]
            seen_running = []

            async def watch():
                for _ in range(100):
                    status = await client.status()
                    seen_running.append(sum(job["state"] == "running" for job in status["inFlight"]))
                    if seen_running[-1] == 0 and len(seen_running) > 1:
                        return
                    await asyncio.sleep(0.05)

            results = await asyncio.gather(
                *(client.solve(q, strategy="cot", options={"maxTokens": 24}) for q in questions), watch())
            for question, result in zip(questions, results[:3]):
                assert result["question"] == question and result["timings"]["predicted_n"] > 0
            assert max(seen_running) >= 2, f"the daemon never ran two at once: {seen_running}"
        finally:
            assert await client.close() == 0
    asyncio.run(main())


def test_no_model_gives_model_not_loaded():
    with Client(model=None) as client:
        with pytest.raises(ModelNotLoaded):
            client.solve(QUESTION)

"""Request options whose effect shows in the result: the adaptive masked pass is on by default
(τ = 0.9) and `"skipMaskedAbove": null` turns it off."""
from conftest import daemon_binary
from daemon import Daemon

QUESTION = "A farmer has 12 cows and buys 7 more. Then 4 cows are sold. How many cows are left?"


def result(daemon, request_id, options):
    return events_and_result(daemon, request_id, {"question": QUESTION, "stream": False,
                                                  "options": {"maxTokens": 60, **options}})[1]


def test_adaptive_masked_pass_is_the_default_and_null_turns_it_off():
    # Requests 1 and 7 must decode alike: on fixed threads, since the thread governor may put a decode on
    # half the threads while other work runs beside the tests, and the thread count can change the last
    # bits of the logits (README, "Beside other work").
    daemon = Daemon(daemon_binary(), "ndjson", args=("--fixed-threads",)).initialize()
    try:
        default = result(daemon, 1, {})["result"]["timings"]
        off = result(daemon, 2, {"skipMaskedAbove": None})["result"]["timings"]
        never = result(daemon, 3, {"skipMaskedAbove": 1})["result"]["timings"]
        assert default["masked_skipped_n"] > 0
        assert off["masked_skipped_n"] == 0 and off["masked_n"] >= off["predicted_n"]
        assert never["masked_skipped_n"] < default["masked_skipped_n"], "hardly any token is certain (p = 1.0)"
        bad = result(daemon, 4, {"skipMaskedAbove": 1.5})
        assert bad["error"]["code"] == -32602 and "skipMaskedAbove" in bad["error"]["message"]
        # maskedPass picks the mode: speculative drafts and verifies (its counts in the timings), every
        # skips nothing, adaptive is the default's behaviour.
        speculative = result(daemon, 5, {"maskedPass": "speculative", "planOmega": 1.3})["result"]["timings"]
        assert speculative["drafts_n"] > 0 and 0 < speculative["draft_accepted_n"] <= speculative["drafted_n"]
        assert speculative["masked_skipped_n"] == 0
        every = result(daemon, 6, {"maskedPass": "every"})["result"]["timings"]
        assert every["masked_skipped_n"] == 0 and every["drafts_n"] == 0
        adaptive = result(daemon, 7, {"maskedPass": "adaptive"})["result"]["timings"]
        assert adaptive["masked_skipped_n"] == default["masked_skipped_n"] and adaptive["drafts_n"] == 0
        wrong = result(daemon, 8, {"maskedPass": "sometimes"})
        assert wrong["error"]["code"] == -32602 and "maskedPass" in wrong["error"]["message"]
        assert result(daemon, 9, {})["result"]["timings"]["predicted_n"] > 0, "the daemon keeps serving"
    finally:
        daemon.kill()


def events_and_result(daemon, request_id, params):
    daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "solve", "params": params})
    events = []
    while True:
        message = daemon.next(timeout=120)
        if message.get("method") == "selfanchor/event" and message["params"]["id"] == request_id:
            events.append(message["params"]["event"])
        elif message.get("id") == request_id:
            return events, message


def test_calculator_planning_and_answer_omega_over_the_wire():
    daemon = Daemon(daemon_binary(), "ndjson").initialize()
    try:
        # The calculator: every calculation event (schema-checked by the Daemon helper) is in the text.
        events, reply = events_and_result(daemon, 1, {"question": QUESTION, "strategy": "cot",
                                                      "options": {"maxTokens": 80, "calculator": True}})
        calculations = [e for e in events if e["event"] == "calculation"]
        result = reply["result"]
        assert calculations and result["timings"]["calculations_n"] == len(calculations)
        for calculation in calculations:
            assert f"= {calculation['value']}" in result["text"]
        deltas = "".join(e["text"] for e in events if e["event"].endswith("_delta"))
        assert deltas == result["text"], "the written values stream like the model's text"
        _, plain = events_and_result(daemon, 2, {"question": QUESTION, "strategy": "cot",
                                                 "options": {"maxTokens": 80, "calculator": False}})
        assert plain["result"]["timings"]["calculations_n"] == 0
        # Unset, the task decides: on for a number question, off for a yes/no one (the same arithmetic asked
        # as yes/no writes values with the calculator asked for, none without).
        _, default = events_and_result(daemon, 11, {"question": QUESTION, "strategy": "cot", "options": {"maxTokens": 80}})
        assert default["result"]["timings"]["calculations_n"] == result["timings"]["calculations_n"]
        assert default["result"]["text"] == result["text"]
        yes_no_question = QUESTION.replace("How many cows are left?", "Are more than 10 cows left?")
        _, asked = events_and_result(daemon, 12, {"question": yes_no_question, "task": "yesno", "strategy": "cot",
                                                  "options": {"maxTokens": 80, "calculator": True}})
        assert asked["result"]["timings"]["calculations_n"] > 0, asked["result"]["text"]
        _, unset = events_and_result(daemon, 13, {"question": yes_no_question, "task": "yesno", "strategy": "cot",
                                                  "options": {"maxTokens": 80}})
        assert unset["result"]["timings"]["calculations_n"] == 0
        # Upfront planning: the plan's items first, then one step per item; the result says so.
        events, reply = events_and_result(daemon, 3, {"question": QUESTION, "options": {
            "maxTokens": 120, "planning": "upfront", "answerOmega": 1.7, "resultOmega": 1}})
        result = reply["result"]
        assert result["planning"] == "upfront" and result["text"].startswith("Plan:\n1.")
        kinds = [e["event"] for e in events if e["event"] in ("plan", "reason")]
        assert kinds and "reason" in kinds and kinds.index("reason") > max(i for i, k in enumerate(kinds) if k == "plan")
        _, interleaved = events_and_result(daemon, 4, {"question": QUESTION, "options": {
            "maxTokens": 40, "planning": "interleaved"}})
        assert interleaved["result"]["planning"] == "interleaved"
        assert interleaved["result"]["text"].startswith("Plan 1:")
        # Without a layout, a yes/no question is interleaved (the task's default), a number upfront.
        _, yes_no = events_and_result(daemon, 9, {"question": "Is the sun larger than the moon?", "task": "yesno",
                                                  "options": {"maxTokens": 30}})
        assert yes_no["result"]["planning"] == "interleaved" and yes_no["result"]["text"].startswith("Plan 1:")
        _, number = events_and_result(daemon, 10, {"question": QUESTION, "options": {"maxTokens": 30}})
        assert number["result"]["planning"] == "upfront"
        # Bad values name the field.
        for request_id, options, field in [(5, {"planning": "sideways"}, "params.options.planning"),
                                           (6, {"calculator": "yes"}, "params.options.calculator"),
                                           (7, {"answerOmega": 11}, "params.options.answerOmega"),
                                           (8, {"resultOmega": "one"}, "params.options.resultOmega")]:
            _, bad = events_and_result(daemon, request_id, {"question": QUESTION, "options": options})
            assert bad["error"]["code"] == -32602 and bad["error"]["data"]["field"] == field, bad
    finally:
        daemon.kill()


def test_plausibility_keeps_steering_among_plausible_tokens():
    # α = 1 leaves only the real context's top token to choose from, so even ω = 8 (which unconstrained
    # turns the test model's text into something else) writes what plain decoding (ω = 1) writes.
    daemon = Daemon(daemon_binary(), "ndjson", args=("--fixed-threads",)).initialize()
    try:
        plain = result(daemon, 1, {"omega": 1})["result"]["text"]
        loose = result(daemon, 2, {"omega": 8, "plausibility": 0})["result"]["text"]
        constrained = result(daemon, 3, {"omega": 8, "plausibility": 1})["result"]["text"]
        assert loose != plain, "ω = 8 should change the text, or this test shows nothing"
        assert constrained == plain
        # Unset, the constraint is off.
        assert result(daemon, 4, {"omega": 8})["result"]["text"] == loose
        assert result(daemon, 5, {"omega": 8, "plausibility": 0.1})["result"]["text"] != loose, "α = 0.1 acts at ω = 8"
        bad = result(daemon, 6, {"plausibility": 1.5})
        assert bad["error"]["code"] == -32602 and bad["error"]["data"]["field"] == "params.options.plausibility", bad
    finally:
        daemon.kill()

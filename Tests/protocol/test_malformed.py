"""Malformed input against the real daemon over pipes. Each case sends something broken, checks the
exact documented error (code, id, the message's gist, `data.field` where the spec names one), and
then checks that the daemon still serves: a following valid request is answered, nothing is left in
flight. Protocol/README.md documents every answer checked here."""
import json
import re

import pytest

from conftest import daemon_binary
from daemon import Daemon

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "clientInfo": {"name": "malformed"}}}
QUESTION = "A farmer has 12 cows and buys 7 more. How many cows does he have?"
BOTH = pytest.mark.parametrize("framing", ["lsp", "ndjson"])


def start(framing, args=(), initialize=True):
    daemon = Daemon(daemon_binary(), framing, list(args))
    if initialize:
        daemon.send(INIT)
        assert "result" in response(daemon, 1)
    return daemon


def response(daemon, request_id=..., timeout=60):
    """The next response (notifications skipped); with `request_id`, it must carry that id."""
    while True:
        message = daemon.next(timeout=timeout)
        if "method" in message:
            continue
        if request_id is not ...:
            assert message["id"] == request_id and type(message["id"]) is type(request_id), message
        return message


def check_error(message, code, pattern=None, request_id=None, field=None):
    assert "error" in message, message
    error = message["error"]
    assert error["code"] == code, message
    assert message["id"] == request_id and type(message["id"]) is type(request_id), message
    if pattern:
        assert re.search(pattern, error["message"]), f"{error['message']!r} does not match {pattern!r}"
    if field:
        assert error["data"]["field"] == field, message


_next_probe = [1000]


def still_serving(daemon):
    """A valid request right after the bad input is answered, and nothing is left in flight."""
    _next_probe[0] += 1
    probe = _next_probe[0]
    daemon.send({"jsonrpc": "2.0", "id": probe, "method": "server/status"})
    message = response(daemon)
    assert message["id"] == probe, f"expected the answer to {probe}, got {message}"
    assert message["result"]["inFlight"] == [] and message["result"]["model"]["name"] == "test"


def expect_error(framing, send, code, pattern=None, request_id=None, field=None, args=()):
    """Sends `send(daemon)`, checks the one error it gets, then that the daemon still serves."""
    daemon = start(framing, args)
    try:
        send(daemon)
        check_error(response(daemon), code, pattern, request_id, field)
        still_serving(daemon)
        daemon.close()
        assert daemon.wait(timeout=60) == 0
    finally:
        daemon.kill()


def body(text):
    return lambda daemon: daemon.send_body(text if isinstance(text, bytes) else text.encode())


def message(value):
    return lambda daemon: daemon.send(value)


def solve(params, request_id=7):
    return {"jsonrpc": "2.0", "id": request_id, "method": "solve", "params": params}


def framed(value):
    data = json.dumps(value).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


STATUS_99 = {"jsonrpc": "2.0", "id": 99, "method": "server/status"}


# ---------------------------------------------------------------- lsp headers


@pytest.mark.parametrize("wire,pattern", [
    (b"Content-Le\r\n\r\n", r"malformed header line"),                     # a header cut short
    (b"Content-Length 12\r\n\r\n", r"malformed header line"),              # no colon
    (b"Content-Length: \r\n\r\n", r"invalid Content-Length"),              # no value
    (b"Content-Length: -5\r\n\r\n", r"invalid Content-Length"),            # negative
    (b"Content-Length: +5\r\n\r\n", r"invalid Content-Length"),            # a sign is not a digit
    (b"Content-Length: 0x10\r\n\r\n", r"invalid Content-Length"),          # not decimal
    (b"Content-Length: 99999999999999999999999999\r\n\r\n", r"invalid Content-Length"),  # overflows 64 bits
    (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", r"conflicting Content-Length"),
    (b"X-Custom: 1\r\n\r\n", r"header without Content-Length"),
    (b"Content-Type: application/json\r\n\r\n", r"header without Content-Length"),
], ids=["truncated-name", "no-colon", "empty-length", "negative", "plus-sign", "hex", "overflow", "conflicting",
        "no-content-length", "content-type-only"])
def test_bad_lsp_header(wire, pattern):
    expect_error("lsp", lambda d: d.send_wire(wire), -32700, pattern)


def test_header_block_too_long():
    # No blank line within 8 KiB: refused, and the reader finds the next header.
    expect_error("lsp", lambda d: d.send_wire(b"X-Junk: " + b"a" * 20000 + b"\r\n\r\n"), -32700, r"no end of header within 8192")


def test_huge_content_length_is_refused_at_once():
    """Cap and resync: a length over --max-message-bytes gets 1005 before any body arrives, and the
    next message is read normally (the bogus body never swallows the stream)."""
    daemon = start("lsp")
    try:
        daemon.send_wire(b"Content-Length: 1000000000000\r\n\r\n")
        check_error(response(daemon, timeout=10), 1005, r"Content-Length 1000000000000 exceeds the limit of 16777216")
        still_serving(daemon)
    finally:
        daemon.kill()


def test_huge_content_length_with_partial_body_resyncs():
    def send(daemon):
        daemon.send_wire(b"Content-Length: 50000000\r\n\r\n" + b'{"jsonrpc":"2.0","id":5,"method":"solve","params":{"question":"' + b"x" * 1000)
    expect_error("lsp", send, 1005, r"exceeds the limit")


def test_over_limit_body_is_skipped_to_next_header():
    # The body really follows (and is over the limit): it is skipped, the next message is answered.
    big = json.dumps(solve({"question": "y" * 5000})).encode()
    expect_error("lsp", lambda d: d.send_wire(b"Content-Length: %d\r\n\r\n" % len(big) + big), 1005,
                 r"exceeds the limit of 4096", args=["--max-message-bytes", "4096"])


def test_header_without_body():
    # A header announcing 60 bytes, then at once a complete message: the header is refused, the message kept.
    def send(daemon):
        daemon.send_wire(b"Content-Length: 60\r\n\r\n" + framed(STATUS_99))
    daemon = start("lsp")
    try:
        daemon.methods["99"] = "server/status"
        send(daemon)
        check_error(response(daemon), -32700, r"followed by another header instead of its body")
        assert response(daemon, 99)["result"]["inFlight"] == []
        still_serving(daemon)
    finally:
        daemon.kill()


@pytest.mark.parametrize("separator", [b"", b"\n", b"\r\n\r\n"], ids=["glued", "newline", "blank-line"])
def test_body_without_header_in_lsp(separator):
    daemon = start("lsp")
    try:
        daemon.methods["99"] = "server/status"
        daemon.send_wire(json.dumps({"jsonrpc": "2.0", "id": 50, "method": "server/status"}).encode() + separator + framed(STATUS_99))
        check_error(response(daemon), -32700, r"malformed header line|header without Content-Length")
        # The bare body is never executed; the framed message after it is.
        assert response(daemon, 99)["result"]["inFlight"] == []
        still_serving(daemon)
    finally:
        daemon.kill()


def test_lowercase_header_and_extra_headers_are_accepted():
    daemon = start("lsp")
    try:
        daemon.methods["99"] = "server/status"
        data = json.dumps(STATUS_99).encode()
        daemon.send_wire(b"content-length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" % len(data) + data)
        assert response(daemon, 99)["result"]["inFlight"] == []
    finally:
        daemon.kill()


def test_empty_body():
    expect_error("lsp", lambda d: d.send_wire(b"Content-Length: 0\r\n\r\n"), -32700, r"parse error")


@pytest.mark.parametrize("wire,pattern", [
    (b"Content-Length: 5", r"ended inside a message header"),
    (b"Content-Length: 100\r\n\r\n{\"jsonrpc\"", r"ended after 10 of 100 body bytes"),
], ids=["truncated-header", "truncated-body"])
def test_truncated_at_end_of_input(wire, pattern):
    """Cut off by EOF: the request before it is answered, the fragment gets -32700, exit status 0."""
    daemon = start("lsp")
    try:
        daemon.send(STATUS_99)
        daemon.send_wire(wire)
        daemon.close()
        assert response(daemon, 99)["result"]["inFlight"] == []
        check_error(response(daemon), -32700, pattern)
        assert daemon.wait(timeout=60) == 0
    finally:
        daemon.kill()


# ---------------------------------------------------------------- bytes and JSON


@BOTH
@pytest.mark.parametrize("raw", [
    b'{"jsonrpc":"2.0",\x00"id":3,"method":"server/status"}',                 # NUL between tokens
    b'{"jsonrpc":"2.0","id":3,"method":"server/status\x00"}',                 # raw NUL inside a string
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"\xff"}}',  # invalid UTF-8
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"\xc0\xaf"}}',  # overlong encoding
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"\xed\xa0\x80"}}',  # UTF-8 encoded surrogate
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"\\ud800"}}',  # lone high surrogate
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"a\\udc00b"}}',  # lone low surrogate
    b'{"jsonrpc":"2.0","id":3,"id":4,"method":"server/status"}',              # duplicate key
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"q","question":"r"}}',  # duplicate nested key
    b'{"jsonrpc":"2.0","id":3,"method":"server/status"} {"x":1}',             # trailing data
    b'{"jsonrpc":"2.0","id":18446744073709551616,"method":"server/status"}',  # integer over 64 bits
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"q","options":{"omega":NaN}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"q","options":{"omega":Infinity}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"q","options":{"omega":-1e999}}}',
    b"{'jsonrpc':'2.0','id':3,'method':'server/status'}",                     # single quotes
    b'{"jsonrpc":"2.0","id":3,"method":"server/status",}',                    # trailing comma
], ids=["nul-between-tokens", "nul-in-string", "invalid-utf8", "overlong-utf8", "encoded-surrogate",
        "lone-high-surrogate", "lone-low-surrogate", "duplicate-key", "duplicate-nested-key", "trailing-data",
        "id-over-64-bits", "omega-nan", "omega-infinity", "omega-overflow", "single-quotes", "trailing-comma"])
def test_not_json(framing, raw):
    expect_error(framing, body(raw), -32700, r"^parse error: ")


@BOTH
@pytest.mark.parametrize("opener,closer", [(b"[", b"]"), (b'{"a":', b"}")], ids=["arrays", "objects"])
def test_nested_100k_levels(framing, opener, closer):
    depth = 100_000
    expect_error(framing, body(opener * depth + b"1" + closer * depth), -32700, r"^parse error: .*depth")


@BOTH
def test_deep_but_allowed_nesting_in_an_unknown_field(framing):
    # 1000 levels parse; the unknown field is then named.
    nested = b'{"a":' * 1000 + b"1" + b"}" * 1000
    raw = b'{"jsonrpc":"2.0","id":3,"method":"solve","params":{"question":"q","deep":' + nested + b"}}"
    expect_error(framing, body(raw), -32602, r"params\.deep: unknown field", 3, "params.deep")


@BOTH
def test_nul_escape_in_a_string_param(framing):
    # Valid JSON, but a NUL would silently cut the prompt where llama.cpp reads C strings.
    expect_error(framing, message(solve({"question": "What is 2+2?\u0000 ignore this"})), -32602,
                 r"params\.question: must not contain NUL", 7, "params.question")


@BOTH
@pytest.mark.parametrize("value,pattern", [
    ([], r"batch requests are not supported"),
    ([{"jsonrpc": "2.0", "id": 3, "method": "server/status"}], r"batch requests are not supported"),
    ([1, 2, 3], r"batch requests are not supported"),
    ("server/status", r"must be a JSON object, not string"),
    (42, r"must be a JSON object, not integer"),
    (None, r"must be a JSON object, not null"),
    (True, r"must be a JSON object, not (boolean|true)"),
], ids=["empty-batch", "batch", "batch-of-numbers", "string", "number", "null", "true"])
def test_not_a_message_object(framing, value, pattern):
    expect_error(framing, message(value), -32600, pattern)


# ---------------------------------------------------------------- envelope and ids


@BOTH
@pytest.mark.parametrize("request_id,kind", [
    (None, "null"), (True, "boolean"), (False, "boolean"), (1.5, "number"), (1.0, "number"),
    ([1], "array"), ({"a": 1}, "object"),
], ids=["null", "true", "false", "fraction", "integral-float", "array", "object"])
def test_bad_id_types(framing, request_id, kind):
    pattern = r'"id" must not be null' if request_id is None else rf'"id" must be a string or an integer, not {kind}'
    expect_error(framing, message({"jsonrpc": "2.0", "id": request_id, "method": "server/status"}), -32600, pattern)


@BOTH
@pytest.mark.parametrize("request_id", ["", "x" * 300, "ü😀", 0, -7, 9223372036854775807, -9223372036854775808],
                         ids=["empty-string", "long-string", "unicode", "zero", "negative", "int64-max", "int64-min"])
def test_good_id_types_are_echoed_exactly(framing, request_id):
    daemon = start(framing)
    try:
        daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "server/status"})
        reply = response(daemon, request_id)
        assert reply["result"]["inFlight"] == []
        still_serving(daemon)
    finally:
        daemon.kill()


@BOTH
@pytest.mark.parametrize("value,code,pattern,request_id", [
    ({"id": 3, "method": "server/status"}, -32600, r'"jsonrpc" must be "2\.0"', 3),
    ({"jsonrpc": 2.0, "id": 3, "method": "server/status"}, -32600, r'"jsonrpc" must be "2\.0"', 3),
    ({"jsonrpc": "2.0", "id": 3, "method": 42}, -32600, r'"method" must be a string', 3),
    ({"jsonrpc": "2.0", "id": 3}, -32600, r'a response needs "result" or "error"', 3),
    ({"jsonrpc": "2.0"}, -32600, r'needs a "method" or an "id"', None),
    ({"jsonrpc": "2.0", "id": 3, "method": "solve", "params": "a string"}, -32600, r'"params" must be an object or an array, not string', 3),
    ({"jsonrpc": "2.0", "id": 3, "method": "solve", "params": 5}, -32600, r'"params" must be an object or an array, not integer', 3),
    ({"jsonrpc": "2.0", "id": 3, "method": "solve", "params": [QUESTION]}, -32602, r"params: expected an object, got array", 3),
    ({"jsonrpc": "2.0", "id": 3, "method": "no/such/method"}, -32601, r"method not found: no/such/method", 3),
    ({"jsonrpc": "2.0", "id": 3, "method": "$/cancelRequest", "params": {"id": 1}}, -32600, r"\$/cancelRequest is a notification", 3),
    ({"jsonrpc": "2.0", "id": 3, "method": "exit"}, -32600, r"exit is a notification", 3),
], ids=["no-jsonrpc", "jsonrpc-number", "method-number", "no-method", "empty-envelope", "params-string",
        "params-number", "params-array", "unknown-method", "cancel-as-request", "exit-as-request"])
def test_bad_envelope(framing, value, code, pattern, request_id):
    expect_error(framing, message(value), code, pattern, request_id)


@BOTH
def test_long_unknown_method_name_is_not_echoed_whole(framing):
    daemon = start(framing)
    try:
        daemon.send({"jsonrpc": "2.0", "id": 3, "method": "m" * 100_000})
        reply = response(daemon, 3)
        check_error(reply, -32601, r"^method not found: m+…", 3)
        assert len(reply["error"]["message"]) < 300
        still_serving(daemon)
    finally:
        daemon.kill()


@BOTH
def test_unknown_envelope_members_and_client_responses_are_ignored(framing):
    daemon = start(framing)
    try:
        daemon.methods["99"] = "server/status"
        daemon.send({"jsonrpc": "2.0", "id": 77, "result": {"anything": 1}})           # a response from the client
        daemon.send({"jsonrpc": "2.0", "id": 78, "error": {"code": 1, "message": "x"}})
        daemon.send({"jsonrpc": "2.0", "method": "no/such/notification", "params": {}})
        daemon.send({**STATUS_99, "extra": {"ignored": True}})
        assert response(daemon)["id"] == 99, "nothing is answered before 99"
        still_serving(daemon)
    finally:
        daemon.kill()


# ---------------------------------------------------------------- params


@BOTH
@pytest.mark.parametrize("params,field,pattern", [
    ({}, "params.question", r"required"),
    ({"question": 42}, "params.question", r"expected a string, got integer"),
    ({"question": None}, "params.question", r"required"),
    ({"question": ""}, "params.question", r"must not be empty"),
    ({"question": " \n\t"}, "params.question", r"must not be empty"),
    ({"question": QUESTION, "options": [1]}, "params.options", r"expected an object, got array"),
    ({"question": QUESTION, "stream": "yes"}, "params.stream", r"expected true or false, got string"),
    ({"question": QUESTION, "strategy": "magic"}, "params.strategy", r'must be one of .*"self-anchor".*got "magic"'),
    ({"question": QUESTION, "strategy": 3}, "params.strategy", r"expected a string, got integer"),
    ({"question": QUESTION, "task": "poetry"}, "params.task", r'must be one of .*got "poetry"'),
    ({"question": QUESTION, "colour": "red"}, "params.colour", r"unknown field"),
    ({"question": QUESTION, "options": {"omgea": 2}}, "params.options.omgea", r"unknown field"),
    ({"question": QUESTION, "options": {"omega": "high"}}, "params.options.omega", r"expected a number, got string"),
    ({"question": QUESTION, "options": {"omega": "NaN"}}, "params.options.omega", r"expected a number, got string"),
    ({"question": QUESTION, "options": {"omega": -11}}, "params.options.omega", r"between -10\.0 and 10\.0, got -11"),
    ({"question": QUESTION, "options": {"omega": 1e308}}, "params.options.omega", r"between -10\.0 and 10\.0"),
    ({"question": QUESTION, "options": {"planOmega": True}}, "params.options.planOmega", r"expected a number, got boolean"),
    ({"question": QUESTION, "options": {"omegaMode": "wild"}}, "params.options.omegaMode", r'must be one of "adaptive", "fixed"'),
    ({"question": QUESTION, "options": {"maxTokens": 0}}, "params.options.maxTokens", r"between 1 and 8192, got 0"),
    ({"question": QUESTION, "options": {"maxTokens": -1}}, "params.options.maxTokens", r"between 1 and 8192, got -1"),
    ({"question": QUESTION, "options": {"maxTokens": 10_000_000}}, "params.options.maxTokens", r"between 1 and 8192, got 10000000"),
    ({"question": QUESTION, "options": {"maxTokens": 9223372036854775807}}, "params.options.maxTokens", r"between 1 and 8192"),
    ({"question": QUESTION, "options": {"maxTokens": 1.5}}, "params.options.maxTokens", r"expected an integer, got number"),
    ({"question": QUESTION, "options": {"maxTokens": "10"}}, "params.options.maxTokens", r"expected an integer, got string"),
    ({"question": QUESTION, "options": {"maxSteps": 65}}, "params.options.maxSteps", r"between 1 and 64"),
    ({"question": QUESTION, "options": {"anchors": "cows"}}, "params.options.anchors", r"expected an array of strings, got string"),
    ({"question": QUESTION, "options": {"anchors": ["cows", 1]}}, "params.options.anchors[1]", r"expected a string, got integer"),
    ({"question": QUESTION, "options": {"placeholder": ""}}, "params.options.placeholder", r"must not be empty"),
    ({"question": QUESTION, "options": {"temperature": -1}}, "params.options.temperature", r"between 0\.0 and 10\.0"),
    ({"question": QUESTION, "options": {"seed": -1}}, "params.options.seed", r"between 0 and 4294967295"),
    ({"question": QUESTION, "options": {"topP": 0}}, "params.options.topP", r"between"),
], ids=["missing-question", "question-number", "question-null", "question-empty", "question-blank", "options-array",
        "stream-string", "unknown-strategy", "strategy-number", "unknown-task", "unknown-field", "unknown-option",
        "omega-string", "omega-nan-string", "omega-below-range", "omega-huge", "plan-omega-bool", "unknown-omega-mode",
        "max-tokens-0", "max-tokens-negative", "max-tokens-huge", "max-tokens-int64", "max-tokens-fraction",
        "max-tokens-string", "max-steps-over", "anchors-string", "anchors-element", "placeholder-empty",
        "temperature-negative", "seed-negative", "top-p-zero"])
def test_bad_solve_params(framing, params, field, pattern):
    expect_error(framing, message(solve(params)), -32602, rf"^{re.escape(field)}: .*{pattern}", 7, field)


@BOTH
@pytest.mark.parametrize("params,field,pattern", [
    ({}, "params.messages", r"required"),
    ({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, "params.prompt", r"either messages or prompt"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "params.messages[0].role", r'must be "system", "user" or "assistant"'),
    ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "params.messages[0].name", r"unknown field"),
    ({"messages": ["hi"]}, "params.messages[0]", r"expected an object, got string"),
    ({"prompt": "Say hi.", "anchors": ["absent"]}, "params.anchors", r'"absent" does not occur in the prompt'),
], ids=["no-messages", "both", "bad-role", "unknown-message-field", "message-string", "anchor-absent"])
def test_bad_generate_params(framing, params, field, pattern):
    expect_error(framing, message({"jsonrpc": "2.0", "id": 8, "method": "generate", "params": params}), -32602,
                 rf"^{re.escape(field)}: .*{pattern}", 8, field)


@BOTH
@pytest.mark.parametrize("params,field", [
    ({"model": 5}, "params.model"), ({}, "params.model"), ({"model": "test", "contextSize": 1}, "params.contextSize"),
    ({"model": "test", "threads": -1}, "params.threads"), ({"model": "test", "size": 1}, "params.size"),
], ids=["model-number", "model-missing", "context-too-small", "threads-negative", "unknown-field"])
def test_bad_model_load_params(framing, params, field):
    expect_error(framing, message({"jsonrpc": "2.0", "id": 9, "method": "model/load", "params": params}), -32602,
                 rf"^{re.escape(field)}: ", 9, field)


@BOTH
def test_negative_omega_within_range_runs(framing):
    """ω < 0 inside [−10, 10] is allowed (it steers away from the anchor); it must decode, not fail."""
    daemon = start(framing)
    try:
        daemon.send(solve({"question": QUESTION, "strategy": "spa", "options": {"omega": -0.5, "maxTokens": 4}}))
        reply = response(daemon, 7)
        assert reply["result"]["timings"]["predicted_n"] >= 1
        still_serving(daemon)
    finally:
        daemon.kill()


@BOTH
@pytest.mark.parametrize("method,params", [
    ("solve", {"question": "Count the cows. " * 2000 + QUESTION, "strategy": "cot", "options": {"maxTokens": 8}}),
    ("generate", {"prompt": "Count the cows. " * 2000, "options": {"maxTokens": 8}}),
], ids=["solve", "generate"])
def test_prompt_longer_than_context(framing, method, params):
    daemon = start(framing, ["--context-size", "1024"])
    try:
        daemon.send({"jsonrpc": "2.0", "id": 10, "method": method, "params": params})
        reply = response(daemon, 10)
        check_error(reply, 1003, r"the prompt needs \d+ tokens but the context holds 1024", 10)
        assert reply["error"]["data"]["contextSize"] == 1024 and reply["error"]["data"]["tokens"] > 1024
        still_serving(daemon)
    finally:
        daemon.kill()


# ---------------------------------------------------------------- cancellation and lifecycle


@BOTH
def test_cancel_unknown_id_and_bad_cancels_get_no_answer(framing):
    daemon = start(framing)
    try:
        for params in [{"id": 12345}, {"id": "nope"}, {}, {"id": None}, {"id": [1]}]:
            daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": params})
        daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest"})
        still_serving(daemon)  # the first message after them is the probe's answer
    finally:
        daemon.kill()


@BOTH
def test_cancel_twice_answers_once(framing):
    daemon = start(framing)
    try:
        daemon.send(solve({"question": QUESTION, "options": {"maxTokens": 3000, "temperature": 4.0, "seed": 7}}))
        while True:  # wait until it is decoding
            event = daemon.next()
            if event.get("method") == "selfanchor/event" and event["params"]["event"]["event"].endswith("_delta"):
                break
        for _ in range(3):
            daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}})
        reply = response(daemon, 7)
        check_error(reply, -32800, r"request cancelled", 7)
        assert reply["error"]["data"]["partial"]["timings"]["stop_reason"] == "cancelled"
        still_serving(daemon)  # no second answer to 7 comes before the probe's
        daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}})  # finished: nothing
        still_serving(daemon)
    finally:
        daemon.kill()


@BOTH
def test_duplicate_in_flight_id(framing):
    daemon = start(framing)
    try:
        daemon.send(solve({"question": QUESTION, "options": {"maxTokens": 3000, "temperature": 4.0, "seed": 7}}))
        daemon.send(solve({"question": QUESTION}))
        check_error(response(daemon), -32600, r"a request with id 7 is already in flight", 7)
        daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}})
        check_error(response(daemon, 7), -32800, r"request cancelled", 7)
        still_serving(daemon)
    finally:
        daemon.kill()


@BOTH
def test_requests_before_initialize(framing):
    daemon = start(framing, initialize=False)
    try:
        daemon.send(solve({"question": QUESTION}, 2))
        check_error(response(daemon), -32002, r"not initialized", 2)
        daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}})  # ignored
        daemon.send({**INIT, "params": {"processId": "abc"}})
        check_error(response(daemon), -32602, r"params\.processId: expected a positive integer or null", 1, "params.processId")
        daemon.send(INIT)
        assert response(daemon, 1)["result"]["serverInfo"]["name"] == "selfanchor"
        daemon.send(INIT)
        check_error(response(daemon), -32600, r"initialize was already received", 1)
        still_serving(daemon)
    finally:
        daemon.kill()


@BOTH
def test_shutdown_twice_and_requests_after_shutdown(framing):
    daemon = start(framing)
    try:
        daemon.methods["4"] = "shutdown"
        daemon.send({"jsonrpc": "2.0", "id": 4, "method": "shutdown"})
        assert response(daemon, 4)["result"] is None
        daemon.send({"jsonrpc": "2.0", "id": 5, "method": "shutdown"})
        check_error(response(daemon), -32600, r"shutting down: only the exit notification", 5)
        daemon.send(solve({"question": QUESTION}, 6))
        check_error(response(daemon), -32600, r"shutting down", 6)
        daemon.send({"jsonrpc": "2.0", "id": 7, "method": "server/status"})
        check_error(response(daemon), -32600, r"shutting down", 7)
        daemon.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 6}})  # ignored
        daemon.send({"jsonrpc": "2.0", "method": "exit"})
        assert daemon.wait(timeout=30) == 0
    finally:
        daemon.kill()


@BOTH
def test_exit_without_shutdown(framing):
    daemon = start(framing)
    try:
        daemon.send({"jsonrpc": "2.0", "method": "exit"})
        assert daemon.wait(timeout=30) == 1
    finally:
        daemon.kill()


@BOTH
def test_model_load_failures_keep_the_model(framing, tmp_path):
    not_gguf = tmp_path / "not-a-model.gguf"
    not_gguf.write_bytes(b"this is not a GGUF file" * 10)
    for request_id, path, reason in [(20, str(tmp_path / "missing.gguf"), r"not found|no such file"),
                                     (21, str(not_gguf), r"no GGUF magic"), (22, str(tmp_path), r"not a regular file")]:
        daemon = start(framing)
        try:
            daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "model/load", "params": {"model": path}})
            reply = response(daemon, request_id)
            check_error(reply, 1002, r"could not load", request_id)
            assert reply["error"]["data"]["path"] == path
            assert re.search(reason, reply["error"]["data"]["reason"], re.I), reply
            still_serving(daemon)
        finally:
            daemon.kill()


def test_millions_of_blank_lines_in_ndjson():
    daemon = start("ndjson")
    try:
        daemon.send_wire(b"\n" * 2_000_000 + b"\r\n \t\n" * 1000)
        still_serving(daemon)
    finally:
        daemon.kill()


def test_ndjson_crlf_and_over_limit_line():
    daemon = start("ndjson", ["--max-message-bytes", "4096"])
    try:
        daemon.methods["99"] = "server/status"
        daemon.send_wire(json.dumps(STATUS_99).encode() + b"\r\n")
        assert response(daemon, 99)["result"]["inFlight"] == []
        daemon.send_wire(b'{"jsonrpc":"2.0","id":5,"method":"solve","params":{"question":"' + b"z" * 100_000 + b'"}}\n')
        check_error(response(daemon), 1005, r"message of \d+ bytes exceeds the limit of 4096 bytes")
        still_serving(daemon)
    finally:
        daemon.kill()

"""A client for the real `selfanchor serve` binary over pipes, in either framing, that validates
every message the daemon sends against the JSON Schemas in Protocol/schema."""
import json
import pathlib
import queue
import subprocess
import threading

import jsonschema
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "Protocol" / "schema"
BASE = "https://selfanchor.local/schema/"


def _registry():
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        resources.append((BASE + path.name, Resource.from_contents(json.loads(path.read_text()))))
    return Registry().with_resources(resources)


REGISTRY = _registry()
METHOD_SCHEMAS = {
    "initialize": "initialize.json", "shutdown": "shutdown.json", "solve": "solve.json", "generate": "generate.json",
    "model/load": "model-load.json", "model/info": "model-info.json", "model/unload": "model-unload.json",
    "server/status": "server-status.json", "analyze": "analyze.json",
}
NOTIFICATION_SCHEMAS = {"selfanchor/event": "event.json", "$/progress": "progress.json"}


_VALIDATORS = {}


def validate(instance, schema_file, pointer=""):
    key = schema_file + pointer
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema.Draft202012Validator({"$ref": BASE + key}, registry=REGISTRY)
    _VALIDATORS[key].validate(instance)


class Daemon:
    def __init__(self, binary, framing, args=(), daemon_framing="auto"):
        self.framing = framing
        self.stderr = open(f"/tmp/selfanchor-conformance-{framing}-{id(self)}.log", "w+")
        self.process = subprocess.Popen(
            [binary, "serve", "--model", "test", "--framing", daemon_framing, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.inbox = queue.Queue()
        self.methods = {}  # request id (as JSON text) -> method
        self.received = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # -- sending
    def send_wire(self, data: bytes):
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send_body(self, body: bytes):
        if self.framing == "lsp":
            self.send_wire(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        else:
            self.send_wire(body + b"\n")

    def send(self, message):
        if isinstance(message, dict) and "id" in message and "method" in message:
            self.methods[json.dumps(message["id"])] = message["method"]
        self.send_body(json.dumps(message, ensure_ascii=False).encode())

    def initialize(self):
        """The language-server handshake: `initialize` (id 0), its reply, then `initialized`."""
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"processId": None}})
        while self.next().get("id") != 0:
            pass
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return self

    def close(self):
        self.process.stdin.close()

    # -- receiving
    def _read(self):
        out = self.process.stdout
        try:
            while True:
                if self.framing == "lsp":
                    header = b""
                    while not header.endswith(b"\r\n\r\n"):
                        byte = out.read(1)
                        if not byte:
                            return self.inbox.put(None)
                        header += byte
                    length = int(header.split(b":")[1].split(b"\r\n")[0])
                    body = out.read(length)
                else:
                    body = out.readline()
                    if not body:
                        return self.inbox.put(None)
                    assert body.endswith(b"\n")
                self.inbox.put(body)
        except Exception as error:  # surfaced by next()
            self.inbox.put(error)

    def next(self, timeout=120):
        body = self.inbox.get(timeout=timeout)
        if body is None:
            raise EOFError("the daemon closed its output")
        if isinstance(body, Exception):
            raise body
        text = body.decode("utf-8")
        assert "\n" not in text.rstrip("\n"), "a message spans lines"
        message = json.loads(text)
        self.check(message)
        self.received.append(message)
        return message

    def check(self, message):
        validate(message, "envelope.json")
        if "method" in message:
            schema = NOTIFICATION_SCHEMAS.get(message["method"])
            assert schema, f"unexpected notification {message['method']}"
            validate(message["params"], schema, "#/$defs/params")
        elif "result" in message:
            method = self.methods.get(json.dumps(message["id"]))
            assert method, f"a response to an id never sent: {message['id']}"
            validate(message["result"], METHOD_SCHEMAS[method], "#/$defs/result")

    def wait(self, timeout=120):
        return self.process.wait(timeout=timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


def matches(actual, expected):
    """`expected` is a subset of `actual`: objects by their keys, lists element by element."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and matches(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(matches(a, e) for a, e in zip(actual, expected))
    if expected is None:
        return actual is None
    return actual == expected and type(actual) is type(expected)

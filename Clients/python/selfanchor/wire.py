"""Content-Length framing (LSP) and the command line that starts the daemon."""
import json
import os
import shutil


def encode(message):
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class HeaderParser:
    """Reads LSP headers line by line; `feed` returns True once the blank line ends them."""

    def __init__(self):
        self.length = None

    def feed(self, line):
        line = line.strip()
        if not line:
            return self.length is not None
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            self.length = int(value.strip())
        return False


def read_message(stream):
    """Reads one framed message from a binary stream; None at end of stream."""
    headers = HeaderParser()
    while True:
        line = stream.readline()
        if not line:
            return None
        if headers.feed(line):
            break
    body = stream.read(headers.length)
    if len(body) < headers.length:
        return None
    return json.loads(body.decode("utf-8"))


def solve_params(question, strategy, task, options, stream):
    """The params of a `solve` request."""
    params = {"question": question, "strategy": strategy, "options": options or {}, "stream": stream}
    if task:
        params["task"] = task
    return params


def analyze_params(text, question, prompt, result, task, options):
    """The params of an `analyze` request: a text (with an optional question or prompt), or a solve result."""
    params = {"options": options or {}}
    for key, value in (("text", text), ("question", question), ("prompt", prompt), ("result", result), ("task", task)):
        if value is not None:
            params[key] = value
    return params


def daemon_command(binary=None, model="default", args=()):
    binary = binary or os.environ.get("SELFANCHOR_BIN") or shutil.which("selfanchor")
    if not binary:
        raise FileNotFoundError("selfanchor binary not found: pass binary=, set SELFANCHOR_BIN, or put it on PATH")
    command = [binary, "serve", "--framing", "lsp"]
    command += ["--no-model"] if model is None else ["--model", model]
    return command + list(args)

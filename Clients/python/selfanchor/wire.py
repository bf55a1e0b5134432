"""Content-Length framing (LSP) and the command line that starts the daemon."""
import json
import os
import shutil


def encode(message):
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stream):
    """Reads one framed message from a binary stream; None at end of stream."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            if length is not None:
                break
            continue
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = stream.read(length)
    if len(body) < length:
        return None
    return json.loads(body.decode("utf-8"))


def daemon_command(binary=None, model="default", args=()):
    binary = binary or os.environ.get("SELFANCHOR_BIN") or shutil.which("selfanchor")
    if not binary:
        raise FileNotFoundError("selfanchor binary not found: pass binary=, set SELFANCHOR_BIN, or put it on PATH")
    command = [binary, "serve", "--framing", "lsp"]
    command += ["--no-model"] if model is None else ["--model", model]
    return command + list(args)

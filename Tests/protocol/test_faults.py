"""Faults against the real daemon binary: the model file deleted or truncated under it, an output
directory that is read-only or full during `selfanchor eval`, the parent process killed, the client
closing the daemon's stdout. Each must end in a clear message, with no hang and nothing already
written lost. The model file is always a private copy of the test model, never the cache's file."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import daemon_binary
from daemon import Daemon

MODELS = pathlib.Path(os.environ.get("SELFANCHOR_MODELS") or pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "selfanchor" / "models")
TEST_MODEL = MODELS / "smollm2-135m-instruct-q4_1.gguf"
QUESTION = "A farmer has 12 cows and buys 7 more. How many cows does he have?"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None}}


@pytest.fixture
def model_copy(tmp_path):
    copy = tmp_path / "model.gguf"
    shutil.copyfile(TEST_MODEL, copy)
    return copy


def response(daemon, request_id, timeout=120):
    while True:
        message = daemon.next(timeout=timeout)
        if "method" not in message:
            assert message["id"] == request_id, message
            return message


def start(args, framing="ndjson"):
    daemon = Daemon(daemon_binary(), framing, [*args, "--threads", "1"])
    daemon.send(INIT)
    return daemon, response(daemon, 1)


def solve_ok(daemon, request_id, max_tokens=8):
    daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "solve",
                 "params": {"question": QUESTION, "strategy": "cot", "options": {"maxTokens": max_tokens}}})
    reply = response(daemon, request_id)
    assert "result" in reply, reply
    assert reply["result"]["timings"]["predicted_n"] >= 1
    return reply


def stderr_text(daemon):
    daemon.stderr.flush()
    daemon.stderr.seek(0)
    return daemon.stderr.read()


# ---------------------------------------------------------------- the model file


@pytest.mark.parametrize("fault", ["delete", "truncate", "overwrite"])
def test_model_file_changed_while_loaded(model_copy, fault):
    """The loaded model keeps serving whatever happens to its file (the daemon reads the weights into
    memory instead of mapping them, so a truncated file cannot SIGBUS it), and reloading the broken
    file fails with 1002 while the loaded model stays."""
    daemon, init = start(["--model", str(model_copy)])
    try:
        assert init["result"]["model"]["path"] == str(model_copy)
        solve_ok(daemon, 2)
        if fault == "delete":
            model_copy.unlink()
        elif fault == "truncate":
            os.truncate(model_copy, 1 << 20)
        else:
            with open(model_copy, "r+b") as file:
                file.seek(4 << 20)
                file.write(b"\xff" * (8 << 20))
        solve_ok(daemon, 3, max_tokens=16)
        daemon.send({"jsonrpc": "2.0", "id": 4, "method": "model/load", "params": {"model": str(model_copy)}})
        reply = response(daemon, 4)
        if fault == "overwrite":
            # Bytes 4-12 MiB are tensor data (the header and tensor table end at 1.7 MiB): a structurally valid
            # GGUF with garbage weights, which llama.cpp loads (it does not check tensor values), and the
            # daemon serves it without crashing: a solve on it is answered.
            assert "result" in reply, reply
            daemon.send({"jsonrpc": "2.0", "id": 7, "method": "solve",
                         "params": {"question": QUESTION, "strategy": "cot", "options": {"maxTokens": 8}}})
            assert "result" in response(daemon, 7)
        else:
            assert reply["error"]["code"] == 1002, reply
            assert reply["error"]["data"]["path"] == str(model_copy)
            assert reply["error"]["message"].startswith(f"could not load {model_copy}")
        if "error" in reply:
            daemon.send({"jsonrpc": "2.0", "id": 5, "method": "model/info"})
            assert response(daemon, 5)["result"]["path"] == str(model_copy)
            solve_ok(daemon, 6)
        daemon.close()
        assert daemon.wait(60) == 0
    finally:
        daemon.kill()


@pytest.mark.parametrize("size", [0, 3, 64, 1 << 20, 50 << 20], ids=["empty", "3-bytes", "header-only", "1MiB", "50MiB"])
def test_truncated_model_file(model_copy, size):
    os.truncate(model_copy, size)
    daemon, init = start(["--model", "test"])
    try:
        daemon.send({"jsonrpc": "2.0", "id": 2, "method": "model/load", "params": {"model": str(model_copy)}})
        reply = response(daemon, 2)
        assert reply["error"]["code"] == 1002, reply
        reason = reply["error"]["data"]["reason"]
        assert reason, reply
        if size < 4:
            assert "shorter than a GGUF header" in reason
        solve_ok(daemon, 3)  # the test model still serves
    finally:
        daemon.kill()


def test_model_file_truncated_or_deleted_while_loading(model_copy):
    """Races a truncation (then a deletion) against model/load at several delays. Every load answers,
    with the model or a 1002, the daemon never dies, and the previous model keeps serving."""
    daemon, _ = start(["--model", "test"])
    outcomes = []
    try:
        request_id = 10
        for delay in [0.0, 0.005, 0.02, 0.05, 0.1, 0.2]:
            for fault in ["truncate", "delete"]:
                shutil.copyfile(TEST_MODEL, model_copy)
                request_id += 1
                daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "model/load", "params": {"model": str(model_copy)}})
                time.sleep(delay)
                if fault == "truncate":
                    os.truncate(model_copy, 2 << 20)
                else:
                    model_copy.unlink()
                reply = response(daemon, request_id)
                outcomes.append("loaded" if "result" in reply else reply["error"]["code"])
                if "error" in reply:
                    assert reply["error"]["code"] == 1002 and reply["error"]["data"]["reason"], reply
                request_id += 1
                solve_ok(daemon, request_id)
                assert daemon.process.poll() is None
        assert 1002 in outcomes, f"no load was ever cut short: {outcomes}"
    finally:
        daemon.kill()


# ---------------------------------------------------------------- the client


def spawn_plain(log):
    """The daemon with plain pipes and no reader thread, so that closing its stdout really closes it."""
    return subprocess.Popen([daemon_binary(), "serve", "--model", "test", "--framing", "ndjson", "--threads", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)


def send_line(process, message):
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def test_client_closes_stdout_early(tmp_path):
    """The daemon notices the broken pipe on its next write, cancels what it was doing, says so on
    stderr and exits (status 1) instead of decoding for nobody."""
    log = open(tmp_path / "stderr.log", "w+")
    process = spawn_plain(log)
    try:
        send_line(process, INIT)
        assert json.loads(process.stdout.readline())["id"] == 1
        send_line(process, {"jsonrpc": "2.0", "id": 2, "method": "solve",
                            "params": {"question": QUESTION, "options": {"maxTokens": 4000, "maxSteps": 60, "temperature": 4.0, "seed": 3}}})
        send_line(process, {"jsonrpc": "2.0", "id": 3, "method": "solve", "params": {"question": QUESTION, "options": {"maxTokens": 4000}}})
        assert json.loads(process.stdout.readline())["method"] == "selfanchor/event"
        process.stdout.close()  # the daemon's next write gets EPIPE
        started = time.monotonic()
        assert process.wait(timeout=60) == 1
        # It notices at its next write (the next token) and stops within a decode step, not a timeout.
        assert time.monotonic() - started < 10
        log.seek(0)
        text = log.read()
        assert "the client closed the protocol stream" in text, text
    finally:
        process.kill()
        process.wait()


def test_client_closes_stdout_while_idle(tmp_path):
    log = open(tmp_path / "stderr.log", "w+")
    process = spawn_plain(log)
    try:
        send_line(process, INIT)
        assert json.loads(process.stdout.readline())["id"] == 1
        process.stdout.close()
        time.sleep(0.5)
        assert process.poll() is None, "an idle daemon has nothing to write and keeps waiting for input"
        send_line(process, {"jsonrpc": "2.0", "id": 2, "method": "server/status"})
        assert process.wait(timeout=30) == 1
        log.seek(0)
        assert "the client closed the protocol stream" in log.read()
    finally:
        process.kill()
        process.wait()


def test_parent_killed_while_decoding():
    """A client process that dies mid-request: its pipes close, so the daemon sees EOF on stdin; it
    cancels nothing it can still deliver, but its writes fail, so it stops and exits promptly."""
    script = f"""
import json, subprocess, sys, time
p = subprocess.Popen([{daemon_binary()!r}, "serve", "--model", "test", "--threads", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(p.pid, flush=True)
p.stdin.write((json.dumps({INIT!r}) + "\\n").encode()); p.stdin.flush()
p.stdout.readline()
p.stdin.write((json.dumps({{"jsonrpc": "2.0", "id": 2, "method": "solve", "params": {{"question": {QUESTION!r}, "options": {{"maxTokens": 4000, "maxSteps": 60, "temperature": 4.0}}}}}}) + "\\n").encode()); p.stdin.flush()
p.stdout.readline()
print("decoding", flush=True)
time.sleep(600)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    daemon_pid = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline().strip() == "decoding"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(daemon_pid, 0)
                with open(f"/proc/{daemon_pid}/stat") as stat:
                    if stat.read().split(")")[1].split()[0] == "Z":
                        break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the daemon outlived its parent by 30 s")
    finally:
        parent.kill()
        try:
            os.kill(daemon_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("framing", ["lsp", "ndjson"])
def test_parent_watch_exits_promptly_while_decoding(framing):
    """processId given and that process killed while a long request decodes: exit status 1 within a
    few seconds, not after the request finishes, and no crash on the way out."""
    parent = subprocess.Popen(["sleep", "120"])
    daemon = Daemon(daemon_binary(), framing, ["--model", "test", "--threads", "1"])
    try:
        daemon.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": parent.pid}})
        response(daemon, 1)
        daemon.send({"jsonrpc": "2.0", "id": 2, "method": "solve",
                     "params": {"question": QUESTION, "options": {"maxTokens": 4000, "maxSteps": 60, "temperature": 4.0}}})
        while daemon.next().get("method") != "selfanchor/event":
            pass
        parent.kill()
        parent.wait()
        assert daemon.wait(timeout=15) == 1
        assert "parent process" in stderr_text(daemon)
    finally:
        parent.kill()
        daemon.kill()


# ---------------------------------------------------------------- eval output


def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {run.stderr.decode().strip()}")


def umount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def write_dataset(path, items=4):
    with open(path, "w") as file:
        for index in range(items):
            file.write(json.dumps({"id": f"q{index}", "question": f"What is {index} + {index + 2}?",
                                   "answer": str(2 * index + 2), "task": "number"}) + "\n")


def eval_command(data, out, strategies="plain,cot"):
    return [daemon_binary(), "eval", "--model", "test", "--threads", "1", "--data", str(data), "--out", str(out),
            "--strategies", strategies, "--max-tokens", "12"]


def records(path):
    lines = path.read_text().splitlines() if path.exists() else []
    parsed = [json.loads(line) for line in lines if line.strip()]
    return {(r["id"], r["strategy"]) for r in parsed}


def test_eval_output_directory_read_only(tmp_path):
    data = tmp_path / "data.jsonl"
    write_dataset(data)
    out = tmp_path / "ro"
    mount_tmpfs(out, "1m")
    try:
        # A first run fills part of the results, then the directory turns read-only.
        first = subprocess.run(eval_command(data, out, "plain"), capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        before = (out / "results.jsonl").read_bytes()
        assert len(records(out / "results.jsonl")) == 4
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        run = subprocess.run(eval_command(data, out, "plain,cot"), capture_output=True, text=True, timeout=300)
        assert run.returncode == 1
        assert "Read-only file system" in run.stderr and "results.jsonl" in run.stderr, run.stderr
        assert (out / "results.jsonl").read_bytes() == before, "results already written were changed"
        # Writable again: the run resumes and only does what is missing.
        subprocess.run(["mount", "-o", "remount,rw", str(out)], check=True)
        again = subprocess.run(eval_command(data, out, "plain,cot"), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "(4 resumed)" in again.stderr
        assert len(records(out / "results.jsonl")) == 8
    finally:
        umount(out)


def test_eval_output_directory_full(tmp_path):
    """A tiny tmpfs fills up mid-run: eval stops with 'No space left on device', every complete record
    stays, no half-written line is left behind, and a rerun with room resumes."""
    data = tmp_path / "data.jsonl"
    write_dataset(data, items=16)
    out = tmp_path / "full"
    mount_tmpfs(out, "8k")
    try:
        run = subprocess.run(eval_command(data, out, "plain"), capture_output=True, text=True, timeout=600)
        assert run.returncode == 1, run.stderr
        assert "No space left on device" in run.stderr, run.stderr
        text = (out / "results.jsonl").read_text()
        assert text == "" or text.endswith("\n"), "a half-written record was left behind"
        kept = records(out / "results.jsonl")
        assert 0 < len(kept) < 16
        saved = tmp_path / "saved.jsonl"
        shutil.copyfile(out / "results.jsonl", saved)
        umount(out)
        out.rmdir()
        out.mkdir()
        shutil.copyfile(saved, out / "results.jsonl")
        again = subprocess.run(eval_command(data, out, "plain"), capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        assert f"({len(kept)} resumed)" in again.stderr
        assert len(records(out / "results.jsonl")) == 16
        assert (out / "summary.md").exists()
    finally:
        umount(out)


# ---------------------------------------------------------------- security


def test_daemon_opens_no_socket_and_only_the_model_file(model_copy):
    daemon, _ = start(["--model", str(model_copy)])
    try:
        solve_ok(daemon, 2)
        daemon.send({"jsonrpc": "2.0", "id": 3, "method": "model/load", "params": {"model": "test"}})
        assert "result" in response(daemon, 3)
        descriptors = pathlib.Path(f"/proc/{daemon.process.pid}/fd")
        targets = [os.readlink(fd) for fd in descriptors.iterdir()]
        assert not [t for t in targets if t.startswith("socket:")], targets
        files = [t for t in targets if t.startswith("/") and not t.startswith(("/dev/", "/proc/"))]
        # stderr's log file is the only regular file left open: the weights were read, not mapped or kept open.
        assert set(files) == {daemon.stderr.name}, targets  # (fd 2, and fd 1 pointed at it)
        with open(f"/proc/{daemon.process.pid}/maps") as maps:
            assert str(model_copy) not in maps.read(), "the model file is mapped"
    finally:
        daemon.kill()

"""A synchronous client: one daemon process, a reader thread routing answers and events by id."""
import itertools
import os
import queue
import subprocess
import threading

from .errors import DaemonExited, error_from
from .wire import analyze_params, daemon_command, encode, read_message, solve_params

_END = object()


class Client:
    """Starts `selfanchor serve` and sends it requests. Thread-safe; usable as a context manager.

    >>> with Client(model="test") as client:
    ...     result = client.solve("What is 2 + 3?", strategy="cot", options={"maxTokens": 32})
    """

    def __init__(self, model="default", binary=None, args=(), stderr=None, client_name="selfanchor-python"):
        self._process = subprocess.Popen(daemon_command(binary, model, args), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE,
                                         stderr=stderr if stderr is not None else subprocess.DEVNULL)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending = {}   # id -> Queue of ("event", e) / ("result", r) / ("error", exc)
        self._listeners = []  # callables for notifications without a pending request
        self._reader = threading.Thread(target=self._read, name="selfanchor-reader", daemon=True)
        self._reader.start()
        self.last_result = None
        self.server_info = self.request("initialize", {"processId": os.getpid(), "clientInfo": {"name": client_name}})
        self.notify("initialized", {})

    # -- plumbing
    def _write(self, message):
        data = encode(message)
        with self._lock:
            self._process.stdin.write(data)
            self._process.stdin.flush()

    def _read(self):
        while True:
            message = read_message(self._process.stdout)
            if message is None:
                break
            if "id" in message and ("result" in message or "error" in message):
                box = self._pending.get(message["id"])
                if box is not None:
                    if "error" in message:
                        box.put(("error", error_from(message["error"])))
                    else:
                        box.put(("result", message["result"]))
            elif message.get("method") == "selfanchor/event":
                box = self._pending.get(message["params"]["id"])
                if box is not None:
                    box.put(("event", message["params"]["event"]))
            else:
                for listener in list(self._listeners):
                    listener(message)
        for box in list(self._pending.values()):
            box.put(("error", DaemonExited("the daemon exited")))

    def notify(self, method, params=None):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._write(message)

    def start(self, method, params=None):
        """Sends a request; returns (id, queue) without waiting."""
        request_id = next(self._ids)
        box = queue.Queue()
        self._pending[request_id] = box
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._write(message)
        return request_id, box

    def _finish(self, request_id, box, on_event=None, timeout=None):
        try:
            while True:
                kind, value = box.get(timeout=timeout)
                if kind == "event":
                    if on_event:
                        on_event(value)
                elif kind == "result":
                    return value
                else:
                    raise value
        finally:
            self._pending.pop(request_id, None)

    def request(self, method, params=None, on_event=None, timeout=None):
        """Sends a request and waits for its answer; raises the typed error on failure."""
        request_id, box = self.start(method, params)
        return self._finish(request_id, box, on_event, timeout)

    def cancel(self, request_id):
        self.notify("$/cancelRequest", {"id": request_id})

    # -- methods
    def solve(self, question, strategy="self-anchor", task=None, options=None, on_event=None, timeout=None):
        """Solves a question; `on_event` sees every streamed event. Returns the result object."""
        params = solve_params(question, strategy, task, options, stream=on_event is not None)
        self.last_result = self.request("solve", params, on_event, timeout)
        return self.last_result

    def solve_stream(self, question, strategy="self-anchor", task=None, options=None):
        """Iterates over the streamed events of a solve; the result is then in `last_result`.
        Closing the iterator early (break) cancels the request."""
        request_id, box = self.start("solve", solve_params(question, strategy, task, options, stream=True))
        finished = False
        try:
            while True:
                kind, value = box.get()
                if kind == "event":
                    yield value
                elif kind == "result":
                    self.last_result = value
                    finished = True
                    return
                else:
                    finished = True
                    raise value
        finally:
            if not finished:
                self.cancel(request_id)
            self._pending.pop(request_id, None)

    def generate(self, messages=None, prompt=None, anchors=(), options=None, on_event=None):
        params = {"anchors": list(anchors), "options": options or {}, "stream": on_event is not None}
        if messages is not None:
            params["messages"] = messages
        if prompt is not None:
            params["prompt"] = prompt
        return self.request("generate", params, on_event)

    def analyze(self, text=None, question=None, prompt=None, result=None, task=None, options=None, timeout=None):
        """Attention analysis (WAAD, FAI, preplan/anchor tokens, credit weights) of a text or a solve result."""
        return self.request("analyze", analyze_params(text, question, prompt, result, task, options), timeout=timeout)

    def load_model(self, model, **params):
        return self.request("model/load", {"model": model, **params})

    def model_info(self):
        return self.request("model/info")

    def status(self):
        return self.request("server/status")

    def close(self):
        """shutdown, exit, and wait for the daemon."""
        if self._process.poll() is None:
            try:
                self.request("shutdown", timeout=60)
                self.notify("exit")
            except Exception:
                pass
            try:
                self._process.stdin.close()
            except Exception:
                pass
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
        return self._process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

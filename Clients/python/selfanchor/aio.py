"""An asyncio client: the same protocol as `Client`, with awaitable requests and async event iterators."""
import asyncio
import itertools
import json
import os

from .errors import DaemonExited, error_from
from .wire import HeaderParser, analyze_params, daemon_command, encode, solve_params


class AsyncClient:
    """`client = await AsyncClient.start(model="test")`, then `await client.solve(...)` or
    `async for event in client.solve_stream(...)`; `await client.close()`."""

    def __init__(self, process):
        self._process = process
        self._ids = itertools.count(1)
        self._pending = {}  # id -> asyncio.Queue
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.last_result = None

    @classmethod
    async def start(cls, model="default", binary=None, args=(), client_name="selfanchor-python-asyncio"):
        command = daemon_command(binary, model, args)
        process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.DEVNULL, limit=1 << 26)
        client = cls(process)
        client.server_info = await client.request("initialize", {"processId": os.getpid(), "clientInfo": {"name": client_name}})
        await client.notify("initialized", {})
        return client

    async def _read_message(self):
        headers = HeaderParser()
        while True:
            line = await self._process.stdout.readline()
            if not line:
                return None
            if headers.feed(line):
                break
        return json.loads((await self._process.stdout.readexactly(headers.length)).decode("utf-8"))

    async def _read(self):
        try:
            while True:
                message = await self._read_message()
                if message is None:
                    break
                if "id" in message and ("result" in message or "error" in message):
                    box = self._pending.get(message["id"])
                    if box:
                        await box.put(("error", error_from(message["error"])) if "error" in message else ("result", message["result"]))
                elif message.get("method") == "selfanchor/event":
                    box = self._pending.get(message["params"]["id"])
                    if box:
                        await box.put(("event", message["params"]["event"]))
        finally:
            for box in list(self._pending.values()):
                await box.put(("error", DaemonExited("the daemon exited")))

    async def _write(self, message):
        self._process.stdin.write(encode(message))
        await self._process.stdin.drain()

    async def notify(self, method, params=None):
        await self._write({"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})})

    async def _start(self, method, params):
        request_id = next(self._ids)
        self._pending[request_id] = asyncio.Queue()
        await self._write({"jsonrpc": "2.0", "id": request_id, "method": method, **({"params": params} if params is not None else {})})
        return request_id

    async def request(self, method, params=None, on_event=None):
        request_id = await self._start(method, params)
        try:
            while True:
                kind, value = await self._pending[request_id].get()
                if kind == "event":
                    if on_event:
                        on_event(value)
                elif kind == "result":
                    return value
                else:
                    raise value
        finally:
            self._pending.pop(request_id, None)

    async def cancel(self, request_id):
        await self.notify("$/cancelRequest", {"id": request_id})

    async def solve(self, question, strategy="self-anchor", task=None, options=None, on_event=None):
        params = solve_params(question, strategy, task, options, stream=on_event is not None)
        self.last_result = await self.request("solve", params, on_event)
        return self.last_result

    async def solve_stream(self, question, strategy="self-anchor", task=None, options=None):
        """Async iterator over events; the result is then in `last_result`. Breaking out cancels."""
        request_id = await self._start("solve", solve_params(question, strategy, task, options, stream=True))
        finished = False
        try:
            while True:
                kind, value = await self._pending[request_id].get()
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
                await self.cancel(request_id)
            self._pending.pop(request_id, None)

    async def analyze(self, text=None, question=None, prompt=None, result=None, task=None, options=None):
        """Attention analysis of a text or a solve result (see `Client.analyze`)."""
        return await self.request("analyze", analyze_params(text, question, prompt, result, task, options))

    async def status(self):
        return await self.request("server/status")

    async def close(self):
        if self._process.returncode is None:
            try:
                await asyncio.wait_for(self.request("shutdown"), 60)
                await self.notify("exit")
                self._process.stdin.close()
            except Exception:
                pass
            try:
                await asyncio.wait_for(self._process.wait(), 30)
            except asyncio.TimeoutError:
                self._process.kill()
        self._reader.cancel()
        return self._process.returncode

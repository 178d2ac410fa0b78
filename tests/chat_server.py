"""An OpenAI-compatible chat endpoint on loopback for tests: can fail, stall, answer garbage or want a key."""

from __future__ import annotations

import http.server
import json
import threading
import time


class FakeChatServer:
    """Answers ``POST /v1/chat/completions``. ``fail_first``: that many HTTP 500s first; ``key``: the bearer
    key it requires (401 otherwise); ``delay_s``: stalls before answering; ``malformed``: a 200 that is not
    a chat completion; ``answer``: the reply text (``{n}`` is the request count)."""

    def __init__(self, *, fail_first: int = 0, key: str | None = None, delay_s: float = 0.0, malformed: bool = False,
                 answer: str = " a person, request {n} ") -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.fail_left, self.key, self.delay_s, self.malformed, self.answer = fail_first, key, delay_s, malformed, answer
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fake.key is not None and self.headers.get("Authorization") != f"Bearer {fake.key}":
                    return self._send(401, {"error": {"message": "invalid key"}})
                if fake.fail_left > 0:
                    fake.fail_left -= 1
                    return self._send(500, {"error": {"message": "busy"}})
                if fake.malformed:
                    return self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
                text = fake.answer.format(n=len(fake.requests))
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}]})

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads, self.server.block_on_close = True, False  # a stalled reply does not hold close()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

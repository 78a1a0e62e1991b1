"""A local, OpenAI-compatible API for other apps on this machine (off until the user starts it).

``POST /v1/chat/completions`` (with ``"stream": true``: server-sent events, OpenAI's
``chat.completion.chunk`` objects, then ``data: [DONE]``) and ``GET /v1/models``, on the
standard library's threaded HTTP server. What makes it safe to leave running:

- bound to 127.0.0.1 only: nothing off this machine can connect;
- a random bearer token (``secrets``) is required on every request and compared in constant
  time; the UI and the command line show it;
- the ``Host`` header must name 127.0.0.1 or localhost (a web page that rebinds its own domain
  to 127.0.0.1 cannot reach it), and requests from other local addresses are refused;
- bodies are capped (:data:`MAX_BODY`), anything other than the two endpoints is refused, and a
  prompt longer than the model's context is an error (``context_length_exceeded``), never cut.

Requests are answered one at a time by the model (the backend's lock); the API's conversations
are the calling app's: they are not stored in the studio's chats. Nothing is logged but the
figures of each request.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from plugins.common.lm.sampling import SamplingSettings
from studio.errors import UserError

from .backends.base import ChatBackend
from .templates import ChatTemplate

HOST = "127.0.0.1"
MAX_BODY = 4 << 20
_ALLOWED_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class ServerConfig:
    """What every request starts from (a request's own values win)."""

    model_id: str                       # the name /v1/models lists
    template: ChatTemplate
    defaults: SamplingSettings          # the persona's sampler
    max_tokens: int = 512               # a request without max_tokens gets at most this many
    system_prompt: str = ""             # the persona's, when a request has no system message


class ChatAPI:
    """The server: ``start()``, then ``url`` and ``token``; ``stop()`` closes it.

    Args:
        backend: the loaded model.
        config: template, defaults, the model's name.
        port: the port on 127.0.0.1 (0: any free one).
        log: told one line per request (figures only, never content).
        stopped: asked during generation; True stops every running reply (the job's Stop).
    """

    def __init__(self, backend: ChatBackend, config: ServerConfig, port: int = 8765,
                 log: Callable[[str], None] | None = None,
                 stopped: Callable[[], bool] | None = None) -> None:
        self.backend = backend
        self.config = config
        self.token = secrets.token_urlsafe(24)
        self.log = log or (lambda _t: None)
        self.stopped = stopped or (lambda: False)
        self.requests = 0
        handler = type("Handler", (_Handler,), {"api": self})
        try:
            self.httpd = ThreadingHTTPServer((HOST, port), handler)
        except OSError as exc:
            raise UserError(f"cannot listen on {HOST}:{port} ({exc.strerror or exc}): another "
                            "program uses that port; choose another (--port), or 0 for any "
                            "free one") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.2}, name="studio-chat-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    # -- the work -------------------------------------------------------------------------------
    def settings_for(self, body: Mapping[str, Any]) -> SamplingSettings:
        d = self.config.defaults

        def num(name: str, default: Any, kind: type = float) -> Any:
            v = body.get(name)
            if v is None:
                return default
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ApiError(400, f"'{name}' must be a number", "invalid_request_error", name)
            return kind(v)

        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if not all(isinstance(x, str) for x in stops):
            raise ApiError(400, "'stop' must be a string or a list of strings",
                           "invalid_request_error", "stop")
        key = "max_completion_tokens" if body.get("max_completion_tokens") is not None \
            else "max_tokens"
        s = replace(d, max_new_tokens=num(key, self.config.max_tokens, int),
                    temperature=num("temperature", d.temperature),
                    top_p=num("top_p", d.top_p), min_p=num("min_p", d.min_p),
                    top_k=num("top_k", d.top_k, int),
                    repetition_penalty=num("repetition_penalty", d.repetition_penalty),
                    seed=num("seed", d.seed, int),
                    stop=tuple(dict.fromkeys([*d.stop, *stops])))
        try:
            s.validate()
        except UserError as exc:
            raise ApiError(400, str(exc), "invalid_request_error", None) from None
        return s

    def prompt_for(self, messages: Any) -> str:
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list", "invalid_request_error",
                           "messages")
        out = []
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, Mapping) else None
            role = "system" if role == "developer" else role
            content = m.get("content") if isinstance(m, Mapping) else None
            if isinstance(content, list):
                parts = [p.get("text") for p in content if isinstance(p, Mapping)
                         and p.get("type") == "text"]
                content = "\n".join(p for p in parts if isinstance(p, str))
            if role not in ("system", "user", "assistant") or not isinstance(content, str):
                raise ApiError(400, f"messages[{i}] needs a role (system, user or assistant) "
                               "and text content", "invalid_request_error", "messages")
            out.append({"role": role, "content": content})
        if self.config.system_prompt and out[0]["role"] != "system":
            out.insert(0, {"role": "system", "content": self.config.system_prompt})
        try:
            return self.config.template.render(out, add_generation_prompt=True)
        except UserError as exc:
            raise ApiError(400, str(exc), "invalid_request_error", "messages") from None


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, param: str | None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = (status, message, kind,
                                                                       param, code)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}


class _Handler(BaseHTTPRequestHandler):
    api: ChatAPI
    protocol_version = "HTTP/1.1"
    server_version = "GenerativeStudio"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return None  # the API logs its own one line per request, never content

    # -- checks ---------------------------------------------------------------------------------
    def _refuse(self) -> ApiError | None:
        try:
            loopback = ipaddress.ip_address(self.client_address[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return ApiError(403, "only programs on this machine may use this API",
                            "permission_error", None)
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name not in _ALLOWED_HOSTS:
            return ApiError(403, "this API answers only requests addressed to 127.0.0.1 or "
                            "localhost", "permission_error", None)
        auth = self.headers.get("Authorization") or ""
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.api.token.encode()):
            return ApiError(401, "a valid bearer token is required (Authorization: Bearer "
                            "TOKEN; the studio shows the token)", "invalid_request_error", None,
                            "invalid_api_key")
        return None

    def _send_json(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: ApiError) -> None:
        self._send_json(err.status, err.body())

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        elif length > MAX_BODY:
            self.close_connection = True

    # -- methods --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        err = self._refuse()
        if err is not None:
            return self._error(err)
        if self.path.split("?")[0].rstrip("/") == "/v1/models":
            return self._send_json(200, {"object": "list", "data": [
                {"id": self.api.config.model_id, "object": "model", "created": 0,
                 "owned_by": "generative-studio"}]})
        return self._error(ApiError(404, f"no endpoint {self.path.split('?')[0]}",
                                    "invalid_request_error", None, "not_found"))

    def do_POST(self) -> None:
        err = self._refuse()
        if err is not None:
            self._drain()
            return self._error(err)
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._drain()
            return self._error(ApiError(404, f"no endpoint {self.path.split('?')[0]}",
                                        "invalid_request_error", None, "not_found"))
        try:
            length = int(self.headers.get("Content-Length") or "x")
        except ValueError:
            self.close_connection = True
            return self._error(ApiError(411, "a Content-Length is required",
                                        "invalid_request_error", None))
        if length > MAX_BODY:
            self.close_connection = True
            return self._error(ApiError(413, "the request is too large",
                                        "invalid_request_error", None))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
            self._complete(body)
        except (ValueError, UnicodeDecodeError):
            return self._error(ApiError(400, "the body is not a JSON object",
                                        "invalid_request_error", None))
        except ApiError as exc:
            return self._error(exc)

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def _not_allowed(self) -> None:
        self._drain()
        err = self._refuse() or ApiError(405, "method not allowed", "invalid_request_error",
                                         None)
        self._error(err)

    # -- completions ----------------------------------------------------------------------------
    def _complete(self, body: dict[str, Any]) -> None:
        api = self.api
        settings = api.settings_for(body)
        prompt = api.prompt_for(body.get("messages"))
        backend = api.backend
        with backend.lock:
            used = backend.count_tokens(prompt)
            ctx = backend.info.context_length
            if used >= ctx:
                raise ApiError(400, f"the messages take {used} tokens and the model's context "
                               f"is {ctx}: shorten them", "invalid_request_error", "messages",
                               "context_length_exceeded")
            cid = "chatcmpl-" + uuid.uuid4().hex[:24]
            created = int(time.time())
            t0 = time.perf_counter()
            gone = threading.Event()

            def cancel() -> bool:
                return gone.is_set() or api.stopped()

            stream = backend.stream(prompt, settings, cancel)
            if body.get("stream"):
                self._stream(stream, cid, created, gone, used)
            else:
                text = "".join(stream)
                g = backend.last_stats
                self._send_json(200, {
                    "id": cid, "object": "chat.completion", "created": created,
                    "model": api.config.model_id,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": _finish(g.stop_reason)}],
                    "usage": {"prompt_tokens": used, "completion_tokens": g.new_tokens,
                              "total_tokens": used + g.new_tokens}})
            g = backend.last_stats
        api.requests += 1
        api.log(f"API request {api.requests}: {used} prompt tokens, {g.new_tokens} generated at "
                f"{g.tokens_per_s:.1f} tokens/s, first after {g.first_token_s:.2f} s "
                f"({time.perf_counter() - t0:.1f} s)")

    def _stream(self, chunks: Any, cid: str, created: int, gone: threading.Event,
                used: int) -> None:
        model = self.api.config.model_id
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(delta: dict[str, Any], finish: str | None) -> bool:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": finish}]}
            return self._write(f"data: {json.dumps(chunk)}\n\n".encode())

        if not event({"role": "assistant", "content": ""}, None):
            gone.set()
        for text in chunks:
            if not gone.is_set() and not event({"content": text}, None):
                gone.set()  # the client went away: stop generating at the next token
        if not gone.is_set():
            event({}, _finish(self.api.backend.last_stats.stop_reason))
            self._write(b"data: [DONE]\n\n")

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:
            return False


def _finish(reason: str) -> str:
    return {"eos": "stop", "stop": "stop", "length": "length",
            "cancelled": "stop"}.get(reason, "stop")

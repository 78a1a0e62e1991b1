"""The local API with a plain HTTP client: OpenAI's shapes (streaming too), the token required,
other hosts refused, nothing but 127.0.0.1, and Stop closing it."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studio import registry
from studio import settings as settings_mod
from studio.jobs import CANCELLED, JobRunner


@pytest.fixture
def api(tiny_chat_model: Path) -> Iterator[dict[str, Any]]:
    info: dict[str, Any] = {}
    ready = threading.Event()
    logs: list[str] = []

    def listen(ev: Any) -> None:
        if ev.kind == "preview" and ev.data.get("kind") == "api":
            info.update(ev.data["payload"])
            ready.set()
        elif ev.kind == "log":
            logs.append(ev.data["text"])
        elif ev.kind == "state" and ev.data["state"] in ("failed", "done"):
            ready.set()

    runner = JobRunner(listen, settings=settings_mod.load())
    spec = registry.get("chat").job("serve")
    rec = runner.submit("chat", spec, {"model": str(tiny_chat_model), "port": "0",
                                       "backend": "transformers", "max_tokens": "12"})
    assert ready.wait(180), "the API did not start"
    assert info, rec.error
    info["runner"], info["record"], info["logs"] = runner, rec, logs
    yield info
    runner.cancel(rec.id)
    runner.wait(rec.id, 30)
    runner.shutdown(timeout=10)


def call(info: dict[str, Any], method: str, path: str, body: Any = None,
         token: str | None = "ok", host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=60)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {info['token'] if token == 'ok' else token}"
    if host is not None:
        headers["Host"] = host
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.9, "seed": 4, "max_tokens": 10}


def test_models_and_completions(api: dict[str, Any]) -> None:
    assert api["url"] == f"http://127.0.0.1:{api['port']}/v1" and len(api["token"]) >= 32
    status, _, body = call(api, "GET", "/v1/models")
    assert status == 200
    models = json.loads(body)
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny-chat"
    status, _, body = call(api, "POST", "/v1/chat/completions", CHAT)
    assert status == 200, body
    done = json.loads(body)
    assert done["object"] == "chat.completion" and done["id"].startswith("chatcmpl-")
    choice = done["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop",
                                                                                  "length")
    usage = done["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = json.loads(call(api, "POST", "/v1/chat/completions", CHAT)[2])
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]  # seed
    assert any("API request" in line and "tokens/s" in line for line in api["logs"])
    assert not any("Hello" in line for line in api["logs"])  # figures, never content


def test_streaming_chunks_parse_as_openai(api: dict[str, Any]) -> None:
    status, headers, body = call(api, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    lines = [ln for ln in body.decode().split("\n\n") if ln.strip()]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln.removeprefix("data: ")) for ln in lines[:-1]]
    assert all(ln.startswith("data: ") for ln in lines)
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"]
        assert set(c) >= {"id", "object", "created", "model", "choices"}
        assert set(c["choices"][0]) == {"index", "delta", "finish_reason"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    whole = json.loads(call(api, "POST", "/v1/chat/completions", CHAT)[2])
    assert text == whole["choices"][0]["message"]["content"]


def test_token_required_and_other_hosts_refused(api: dict[str, Any]) -> None:
    status, headers, body = call(api, "GET", "/v1/models", token=None)
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    assert call(api, "POST", "/v1/chat/completions", CHAT, token="guess")[0] == 401
    assert call(api, "GET", "/v1/models", token=api["token"][:-1] + "x")[0] == 401
    status, _, body = call(api, "GET", "/v1/models", host=f"evil.example:{api['port']}")
    assert status == 403 and "127.0.0.1 or localhost" in json.loads(body)["error"]["message"]
    assert call(api, "GET", "/v1/models", host=f"localhost:{api['port']}")[0] == 200
    # bound to 127.0.0.1 only: another address of this machine gets no connection at all
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", api["port"]), timeout=5).close()


def test_anything_else_is_refused(api: dict[str, Any]) -> None:
    assert call(api, "GET", "/v1/completions")[0] == 404
    assert call(api, "POST", "/admin", {})[0] == 404
    assert call(api, "PUT", "/v1/chat/completions", CHAT)[0] == 405
    assert call(api, "DELETE", "/v1/models", token=None)[0] == 401  # the token comes first
    status, _, body = call(api, "POST", "/v1/chat/completions", {"messages": "hi"})
    assert status == 400 and json.loads(body)["error"]["param"] == "messages"
    status, _, body = call(api, "POST", "/v1/chat/completions", {**CHAT, "temperature": "hot"})
    assert status == 400 and "temperature" in json.loads(body)["error"]["message"]
    long = {**CHAT, "messages": [{"role": "user", "content": "tea " * 600}]}
    status, _, body = call(api, "POST", "/v1/chat/completions", long)
    assert status == 400 and json.loads(body)["error"]["code"] == "context_length_exceeded"
    conn = http.client.HTTPConnection("127.0.0.1", api["port"], timeout=30)
    conn.request("POST", "/v1/chat/completions", body=b"{not json",
                 headers={"Authorization": f"Bearer {api['token']}"})
    assert conn.getresponse().status == 400
    conn.close()


def test_stop_closes_the_server(api: dict[str, Any]) -> None:
    runner, rec = api["runner"], api["record"]
    runner.cancel(rec.id)
    assert runner.wait(rec.id, 30).state == CANCELLED
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", api["port"]), timeout=5).close()
    assert any("API closed" in line for line in api["logs"])

"""A scripted model server on 127.0.0.1 speaking the OpenAI and DashScope HTTP APIs, for tests.

Chat answers are scripted per calling worker (the `X-Memscope-Worker` header); embeddings are
deterministic unit vectors from a hash of the text; rerank scores by word overlap. In-process:

    server = ScriptedServer().start()
    server.script("extract_observations", {"observations": []}, Fault.status(429), "plain text")
    server.default(None, "fallback answer")

As its own process (for workers in other processes): `python -m tests.support.scripted_server
--port N`, scripted over HTTP with `POST /_script`, `POST /_default`, `POST /_reset`,
`GET /_requests` (or the `RemoteScript` client below).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import random
import re
import threading
import time
import urllib.request
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["Fault", "RecordedRequest", "RemoteScript", "ScriptedServer", "minimal_instance"]

WORKER_HEADER = "X-Memscope-Worker"
EMBED_TAG = "embeddings"  # scripted faults for embedding requests (no worker header) use this tag
RERANK_TAG = "rerank"
INVALID_JSON = '{"answer": this is not json'
_ANSWERED = object()  # a random fault already sent its answer
SCHEMA_MARKER = "JSON schema of the answer:"  # as written by memscope.llm.structured.schema_prompt


@dataclass(frozen=True)
class Fault:
    """A scripted failure: an HTTP status, a delay before another answer, a hang, or invalid JSON."""

    kind: str
    code: int = 500
    seconds: float = 0.0
    then: Any = None
    message: str = ""
    retry_after: str | None = None

    @classmethod
    def status(cls, code: int, message: str = "", retry_after: str | None = None) -> Fault:
        """Answer with this HTTP status and a provider-shaped error body (and a Retry-After header if given)."""
        return cls("status", code=code, message=message, retry_after=retry_after)

    @classmethod
    def html(cls) -> Fault:
        """Answer HTTP 200 with an HTML page, as a misconfigured proxy does."""
        return cls("html")

    @classmethod
    def delay(cls, seconds: float, then: Any) -> Fault:
        """Wait `seconds`, then answer with `then` (any response)."""
        return cls("delay", seconds=seconds, then=then)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Send nothing for `seconds` (past any sane client timeout), then close; cut short by reset()."""
        return cls("hang", seconds=seconds)

    @classmethod
    def invalid_json(cls) -> Fault:
        """Answer with content that is not valid JSON."""
        return cls("invalid_json")

    def to_json(self) -> dict[str, Any]:
        """The wire form used by `POST /_script`."""
        out: dict[str, Any] = {
            "fault": self.kind,
            "code": self.code,
            "seconds": self.seconds,
            "message": self.message,
        }
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.then is not None:
            out["then"] = _response_to_json(self.then)
        return out


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    tag: str
    received_at: float = field(default_factory=time.monotonic)  # for the gaps between retries

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of this request."""
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "json": self.json,
            "tag": self.tag,
        }


def _response_to_json(resp: Any) -> Any:
    if isinstance(resp, Fault):
        return resp.to_json()
    if isinstance(resp, str):
        return resp
    return {"content": resp}


def _response_from_json(value: Any) -> Any:
    """Inverse of the wire form: strings are content, {"fault": ...} a Fault, {"content": x} x."""
    if isinstance(value, dict) and "fault" in value:
        then = value.get("then")
        return Fault(
            kind=value["fault"],
            code=int(value.get("code", 500)),
            seconds=float(value.get("seconds", 30.0 if value["fault"] == "hang" else 0.0)),
            then=_response_from_json(then) if then is not None else None,
            message=value.get("message", ""),
            retry_after=value.get("retry_after"),
        )
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    return value


# ---------------------------------------------------------------- deterministic model stand-ins


def words(text: Any) -> int:
    """Whitespace word count of a text, or of all texts inside a message content structure."""
    if isinstance(text, str):
        return len(text.split())
    if isinstance(text, list):
        return sum(words(p.get("text", "") if isinstance(p, dict) else p) for p in text)
    return 0


def fake_embedding(text: str, dim: int) -> list[float]:
    """A deterministic pseudo-random unit vector seeded by the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    vec /= np.linalg.norm(vec) or 1.0
    return [float(x) for x in vec]


def overlap_score(query: str, doc: str) -> float:
    """Share of the query's words found in the document (case-insensitive)."""
    q = set(re.findall(r"\w+", query.lower()))
    d = set(re.findall(r"\w+", doc.lower()))
    return len(q & d) / len(q) if q else 0.0


def minimal_instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """The smallest value valid for a JSON schema (required fields only; first enum/anyOf option)."""
    root = root or schema
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return minimal_instance(root.get("$defs", root.get("definitions", {}))[ref], root)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return minimal_instance(options[0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: minimal_instance(props.get(name, {}), root) for name in schema.get("required", [])}
    if kind == "array":
        n = int(schema.get("minItems", 0))
        return [minimal_instance(schema.get("items", {}), root) for _ in range(n)]
    return {
        "string": "",
        "integer": int(schema.get("minimum", 0)),
        "number": float(schema.get("minimum", 0)),
        "boolean": False,
        "null": None,
    }.get(kind)


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a chat request asks for: OpenAI json_schema, else the one written in the prompt."""
    fmt = body.get("response_format") or (body.get("parameters") or {}).get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return dict(fmt.get("json_schema", {}).get("schema") or {})
    for message in chat_messages(body):
        content = message.get("content")
        if isinstance(content, str) and SCHEMA_MARKER in content:
            tail = content.split(SCHEMA_MARKER, 1)[1].strip()
            try:
                found, _ = json.JSONDecoder().raw_decode(tail)
                return dict(found)
            except ValueError:
                return None
    return None


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of an OpenAI or DashScope chat request."""
    return list(body.get("messages") or (body.get("input") or {}).get("messages") or [])


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(chat_messages(body)):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


_USER_LINE = re.compile(r"^\[(\d+)\] [^|\n]*\| user(?:\([^)]*\))?: (.*)$", re.MULTILINE)


def _task_lines(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The numbered user lines of the newest user message that has any: a repair request (the newest
    message, with no lines) is answered from the task it repairs, as a real model would."""
    for message in reversed(chat_messages(body)):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            found = _USER_LINE.findall(message["content"])
            if found:
                return list(found)
    return []


def _deref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return dict(root.get("$defs", {}).get(schema["$ref"].split("/")[-1], {}))
    return schema


def plausible_answer(body: dict[str, Any]) -> Any:
    """A consolidation-shaped answer for any prompt: every user line `[n] ... | user: text` scores 3 and
    gives one observation citing it (when the schema asks for `scores` / `observations` with `sources`);
    any other schema gets its minimal instance (no timed observations, no contradictions, ...)."""
    schema = request_schema(body) or {"type": "object"}
    props = schema.get("properties", {})
    lines = _task_lines(body)
    if "scores" in props:
        return {"scores": [{"index": int(n), "score": 3, "reason": "scripted"} for n, _ in lines]}
    items = _deref(_deref(props.get("observations", {}), schema).get("items", {}), schema)
    if "sources" in items.get("properties", {}):
        return {"observations": [{"content": f"The user said: {text.strip()}", "sources": [int(n)],
                                  "importance": 0.5, "keywords": []} for n, text in lines]}
    return minimal_instance(schema)


_WORDINGS = ("The user said: {}", "User mentioned: {}", "According to the user: {}")
_varied_calls = itertools.count()


def varied_answer(body: dict[str, Any]) -> Any:
    """`plausible_answer`, but each answer words its observations differently, as a real model does
    from one call to the next: two runs over one batch then write different memories."""
    answer = plausible_answer(body)
    if isinstance(answer, dict) and isinstance(answer.get("observations"), list):
        wording = _WORDINGS[next(_varied_calls) % len(_WORDINGS)]
        for item in answer["observations"]:
            if isinstance(item, dict) and "content" in item:
                item["content"] = wording.format(item["content"].removeprefix("The user said: "))
    return answer


BUILTIN_MODES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "echo": _last_user_text,
    "consolidation": plausible_answer,
    "varied_consolidation": varied_answer,
    "schema": lambda body: minimal_instance(request_schema(body) or {"type": "object"}),
    "error": lambda body: Fault.status(500, "scripted error mode"),
    "invalid_json": lambda body: Fault.invalid_json(),
}


# ---------------------------------------------------------------- the server


class ScriptedServer:
    """OpenAI + DashScope compatible HTTP server whose chat answers are scripted per worker tag."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, dim: int = 64) -> None:
        self.host, self._port, self.dim = host, port, dim
        self.latency = 0.0
        self.fault_rates: dict[str, float] = {}  # "429" | "500" | "timeout" | "invalid_json" -> chance per call
        self.retry_after_s = 1.0  # the Retry-After of a random 429
        self.hang_s = 30.0  # how long a random "timeout" sends nothing
        self.record = True  # False: keep no request log (long soak runs)
        self.requests: list[RecordedRequest] = []
        self._queues: dict[str, deque[Any]] = defaultdict(deque)
        self._defaults: dict[str | None, Any] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set to cut hangs short
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> ScriptedServer:
        """Bind and serve in a daemon thread; returns self."""
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._httpd = ThreadingHTTPServer((self.host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._wake.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for the openai SDK."""
        return f"{self.url}/v1"

    @property
    def dashscope_base_url(self) -> str:
        """Base URL (`base_address`) for the dashscope SDK."""
        return f"{self.url}/api/v1"

    # ---- scripting

    def script(self, tag: str, *responses: Any) -> None:
        """Queue answers for calls tagged `tag`, first in first out."""
        with self._lock:
            self._queues[tag].extend(responses)

    def default(self, tag: str | None, responder: Any) -> None:
        """Answer for `tag` (None: any tag) whenever its queue is empty."""
        with self._lock:
            self._defaults[tag] = responder

    def reset(self) -> None:
        """Forget scripts, defaults, recorded requests and latency; end any hang in progress."""
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self.requests.clear()
            self.latency = 0.0
            self._wake.set()
            self._wake = threading.Event()

    def pending(self, tag: str | None = None) -> int:
        """How many scripted answers are still queued (for one tag, or all)."""
        with self._lock:
            if tag is not None:
                return len(self._queues.get(tag, ()))
            return sum(len(q) for q in self._queues.values())

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        """Recorded requests whose path ends with `suffix`."""
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0].endswith(suffix)]

    # ---- used by the handler

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _next(self, tag: str, faults_only: bool = False) -> tuple[bool, Any]:
        """(found, response) for a call tagged `tag`: its queue, then its default, then the catch-all."""
        with self._lock:
            queue = self._queues.get(tag)
            if queue:
                if faults_only and not isinstance(queue[0], Fault):
                    return False, None
                return True, queue.popleft()
            if faults_only:
                return False, None
            if tag in self._defaults:
                return True, self._defaults[tag]
            if None in self._defaults:
                return True, self._defaults[None]
        return False, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_ref: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ---- plumbing

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        html = isinstance(payload, str) and payload.startswith("<html")
        data = payload.encode("utf-8") if html else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if html else "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", uuid.uuid4().hex)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        srv = self.server_ref
        body = self._body() if method == "POST" else None
        path = self.path.split("?")[0].rstrip("/")
        if path.startswith("/_"):
            self._control(method, path, body)
            return
        tag = self.headers.get(WORKER_HEADER, "")
        if srv.record:
            srv._record(RecordedRequest(method, self.path, {k: v for k, v in self.headers.items()}, body, tag))
        if srv.latency:
            time.sleep(srv.latency)
        body = body if isinstance(body, dict) else {}
        dialect = "dashscope" if "/services/" in path else "openai"
        override = self._random_fault(dialect, chat=path.endswith(("/chat/completions", "/generation")))
        if override is _ANSWERED:
            return
        if override is not None and method == "POST" and path.endswith("/chat/completions"):
            self._chat(body, tag, "openai", override=override)
            return
        if method == "GET" and path.endswith("/models"):
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "scripted"}
                        for m in ("gpt-4o-mini", "text-embedding-3-small")
                    ],
                },
            )
        elif method == "POST" and path.endswith("/chat/completions"):
            self._chat(body, tag, "openai")
        elif method == "POST" and path.endswith("/services/aigc/text-generation/generation"):
            self._chat(body, tag, "dashscope")
        elif method == "POST" and (path.endswith("/embeddings") or path.endswith("/text-embedding/text-embedding")):
            self._embeddings(body, tag or EMBED_TAG, dialect)
        elif method == "POST" and path.endswith("/text-rerank/text-rerank"):
            self._rerank(body, tag or RERANK_TAG)
        else:
            self._error(404, f"scripted server has no route {method} {path}", dialect)

    def _random_fault(self, dialect: str, chat: bool) -> Any:
        """Maybe fail this model call at the server's `fault_rates`: `_ANSWERED` when the fault answered,
        INVALID_JSON for the chat answer to send instead, None for no fault."""
        srv = self.server_ref
        if not srv.fault_rates or self.command != "POST":
            return None
        roll, edge = random.random(), 0.0
        for kind, rate in srv.fault_rates.items():
            edge += rate
            if roll >= edge:
                continue
            if kind == "429":
                data = json.dumps({"error": {"message": "Rate limit reached (scripted).", "type": "Throttling",
                                             "code": "throttling"}}).encode()
                self.send_response(429)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", f"{srv.retry_after_s:g}")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif kind == "500":
                self._error(500, "scripted random server error", dialect)
            elif kind == "timeout":
                srv._wake.wait(srv.hang_s)
                self.close_connection = True
            elif kind == "invalid_json" and chat:
                return INVALID_JSON
            else:
                return None
            return _ANSWERED
        return None

    def _error(self, status: int, message: str, dialect: str, headers: dict[str, str] | None = None) -> None:
        codes = {400: "InvalidParameter", 401: "InvalidApiKey", 404: "NotFound", 429: "Throttling"}
        code = codes.get(status, "InternalError")
        if dialect == "dashscope":
            self._send(status, {"code": code, "message": message, "request_id": uuid.uuid4().hex}, headers)
        else:
            self._send(status, {"error": {"message": message, "type": code, "code": code.lower()}}, headers)

    def _apply_fault(self, fault: Fault, dialect: str) -> Any:
        """Handle a fault; returns the response to send next, or None when the fault already answered."""
        srv = self.server_ref
        if fault.kind == "status":
            default_messages = {
                401: "Incorrect API key provided: the scripted server rejects this key.",
                429: "Rate limit reached (scripted).",
            }
            message = fault.message or default_messages.get(fault.code, f"scripted HTTP {fault.code}")
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            self._error(fault.code, message, dialect, headers)
            return None
        if fault.kind == "html":
            self._send(200, "<html><body><h1>Welcome to nginx!</h1></body></html>")
            return None
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return fault.then
        if fault.kind == "hang":
            srv._wake.wait(fault.seconds)
            self.close_connection = True
            return None
        if fault.kind == "invalid_json":
            return INVALID_JSON
        raise ValueError(f"unknown fault kind {fault.kind!r}")

    # ---- endpoints

    def _chat(self, body: dict[str, Any], tag: str, dialect: str, override: Any = None) -> None:
        found, response = (True, override) if override is not None else self.server_ref._next(tag)
        if not found:
            self._error(500, f"no script for tag {tag!r} (script it with server.script({tag!r}, ...))", dialect)
            return
        for _ in range(16):  # resolve callables, delays and faults
            if callable(response) and not isinstance(response, Fault):
                response = response(body)
            elif isinstance(response, Fault):
                response = self._apply_fault(response, dialect)
                if response is None:
                    return
            else:
                break
        content = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
        prompt = sum(words(m.get("content")) for m in chat_messages(body))
        completion = words(content)
        model = body.get("model", "scripted")
        if dialect == "openai":
            self._send(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                },
            )
            return
        params = body.get("parameters") or {}
        if params.get("result_format") == "message":
            output: dict[str, Any] = {
                "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": content}}]
            }
        else:
            output = {"text": content, "finish_reason": "stop"}
        self._send(
            200,
            {
                "output": output,
                "request_id": uuid.uuid4().hex,
                "usage": {
                    "input_tokens": prompt,
                    "output_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )

    def _take_fault(self, tag: str, dialect: str) -> bool:
        """Apply a scripted fault for an embedding/rerank call; True when it already answered."""
        found, fault = self.server_ref._next(tag, faults_only=True)
        if not found:
            return False
        return self._apply_fault(fault, dialect) is None

    def _embeddings(self, body: dict[str, Any], tag: str, dialect: str) -> None:
        if self._take_fault(tag, dialect):
            return
        srv = self.server_ref
        if dialect == "openai":
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            if not texts or len(texts) > 2048:
                self._error(400, f"input must hold 1 to 2048 texts, got {len(texts)}", dialect)
                return
            dim = int(body.get("dimensions") or srv.dim)
            data = []
            for i, text in enumerate(texts):
                vec = fake_embedding(str(text), dim)
                value: Any = vec
                if body.get("encoding_format") == "base64":
                    value = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()
                data.append({"object": "embedding", "index": i, "embedding": value})
            tokens = sum(words(t) for t in texts)
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model", "scripted"),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
            return
        texts = list((body.get("input") or {}).get("texts") or [])
        limit = 25 if str(body.get("model", "")).endswith(("-v1", "-v2")) else 10
        if not texts or len(texts) > limit:
            self._error(
                400,
                f"batch size is invalid, it should not be larger than {limit} (got {len(texts)})",
                dialect,
            )
            return
        dim = int((body.get("parameters") or {}).get("dimension") or srv.dim)
        rows = [{"text_index": i, "embedding": fake_embedding(str(t), dim)} for i, t in enumerate(texts)]
        self._send(
            200,
            {
                "output": {"embeddings": rows},
                "request_id": uuid.uuid4().hex,
                "usage": {"total_tokens": sum(words(t) for t in texts)},
            },
        )

    def _rerank(self, body: dict[str, Any], tag: str) -> None:
        if self._take_fault(tag, "dashscope"):
            return
        inp, params = body.get("input") or {}, body.get("parameters") or {}
        query, docs = str(inp.get("query", "")), list(inp.get("documents") or [])
        scored = sorted(((overlap_score(query, str(d)), i) for i, d in enumerate(docs)), key=lambda x: (-x[0], x[1]))
        if params.get("top_n"):
            scored = scored[: int(params["top_n"])]
        results = []
        for score, i in scored:
            item: dict[str, Any] = {"index": i, "relevance_score": score}
            if params.get("return_documents"):
                item["document"] = {"text": docs[i]}
            results.append(item)
        tokens = words(query) + sum(words(str(d)) for d in docs)
        self._send(
            200,
            {
                "output": {"results": results},
                "usage": {"total_tokens": tokens},
                "request_id": uuid.uuid4().hex,
            },
        )

    # ---- control API (for a server in another process)

    def _control(self, method: str, path: str, body: Any) -> None:
        srv = self.server_ref
        body = body if isinstance(body, dict) else {}
        if method == "POST" and path == "/_script":
            srv.script(str(body.get("tag", "")), *[_response_from_json(r) for r in body.get("responses", [])])
        elif method == "POST" and path == "/_default":
            mode = body.get("mode", "static")
            if mode == "static":
                responder = _response_from_json(body.get("response", ""))
            elif mode in BUILTIN_MODES:
                responder = BUILTIN_MODES[mode]
            else:
                self._send(400, {"error": f"unknown mode {mode!r}; known: static, {', '.join(BUILTIN_MODES)}"})
                return
            srv.default(body.get("tag"), responder)
        elif method == "POST" and path == "/_reset":
            srv.reset()
        elif method == "POST" and path == "/_latency":
            srv.latency = float(body.get("seconds", 0.0))
        elif method == "GET" and path == "/_requests":
            with srv._lock:
                recorded = [r.to_json() for r in srv.requests]
            self._send(200, {"requests": recorded})
            return
        else:
            self._send(404, {"error": f"no control route {method} {path}"})
            return
        self._send(200, {"ok": True})


class RemoteScript:
    """Scripts a scripted server running in another process, over its control API."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())

    def script(self, tag: str, *responses: Any) -> None:
        """Queue answers for `tag` (str, JSON-able value, or Fault; not callables)."""
        self._post("/_script", {"tag": tag, "responses": [_response_to_json(r) for r in responses]})

    def default(self, tag: str | None, mode: str = "static", response: Any = None) -> None:
        """Set a fallback: mode `static` (with `response`), `echo`, `schema`, `consolidation`, `error` or
        `invalid_json`."""
        payload: dict[str, Any] = {"tag": tag, "mode": mode}
        if response is not None:
            payload["response"] = _response_to_json(response)
        self._post("/_default", payload)

    def reset(self) -> None:
        """Clear scripts, defaults and recorded requests."""
        self._post("/_reset", {})

    def set_latency(self, seconds: float) -> None:
        """Delay every model answer by `seconds`."""
        self._post("/_latency", {"seconds": seconds})

    def requests(self) -> list[dict[str, Any]]:
        """Every model request the server recorded."""
        with urllib.request.urlopen(f"{self.url}/_requests", timeout=self.timeout_s) as resp:
            return list(json.loads(resp.read())["requests"])


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground until interrupted; prints its URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every model answer")
    parser.add_argument(
        "--default-mode", default=None, choices=sorted(BUILTIN_MODES), help="fallback answer for any tag"
    )
    parser.add_argument("--fault-rates", default="",
                        help="random faults per model call, e.g. 429=0.05,500=0.05,timeout=0.01,invalid_json=0.03")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds of a random 429")
    parser.add_argument("--hang", type=float, default=30.0, help="seconds a random timeout sends nothing")
    parser.add_argument("--no-record", action="store_true", help="keep no request log (long runs)")
    args = parser.parse_args(argv)
    server = ScriptedServer(host=args.host, port=args.port, dim=args.dim).start()
    server.latency = args.latency
    server.fault_rates = {k: float(v) for k, v in (p.split("=") for p in args.fault_rates.split(",") if p)}
    server.retry_after_s, server.hang_s, server.record = args.retry_after, args.hang, not args.no_record
    if args.default_mode:
        server.default(None, BUILTIN_MODES[args.default_mode])
    print(f"scripted server listening on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""The ASGI layers in front of the routes of :mod:`retrievo.server.app`: the body limit, the last-resort
handler that answers any exception with a JSON error on a connection kept open, and :class:`FastSearch`,
which answers valid search bodies before FastAPI's own stack (the app, :class:`RetrievoApp`, calls it first).
"""

from __future__ import annotations

import errno
import logging
import re
import time
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from retrievo.errors import RetrievoError

__all__ = ["BodyLimit", "CatchAll", "FastSearch", "RetrievoApp", "error_body", "unexpected"]

log = logging.getLogger("retrievo.server")


def error_body(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"status": status, "type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` (declared or streamed) with 413."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    resp = error_body(413, "PayloadTooLarge", f"request body over the limit of {self.max_bytes} bytes")
                    await resp(scope, receive, send)
                    return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, f"request body over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class FastSearch:
    """A search whose body is valid, answered before the framework sees it: no routing, dependency
    resolution, middleware layers or re-parsing (the body is parsed once by pydantic's JSON parser and
    checked by the same generated model), and the answer is sent as two raw ASGI messages. Whatever does not
    pass — a body the model refuses, no or a too large declared length, a limit, an error raised by the
    search — goes to the regular route with the body replayed, which answers it as usual. Used only when
    the framework adds nothing a search needs: no read key to check and no CORS headers to add."""

    PATH = re.compile(r"^/v1/collections/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/search$")
    _HEADERS = (b"content-type", b"application/json")

    def __init__(self, model: Any, prepare: Any, errors: Any, counters: dict[str, int], max_bytes: int) -> None:
        self.model, self.prepare, self.errors, self.counters, self.max_bytes = model, prepare, errors, counters, max_bytes

    async def __call__(self, name: str, scope: dict, receive: Any, send: Any, fallback: Any) -> None:
        declared = kind = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                declared = v
            elif k == b"content-type":
                kind = v
        if (declared is None or not declared.isdigit() or int(declared) > self.max_bytes
                or kind is None or not kind.startswith(b"application/json")):
            await fallback(scope, receive, send)  # chunked, too large or not JSON: the route answers it
            return
        t0 = time.perf_counter()
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            req = self.model.model_validate_json(body)
            work, inline = self.prepare(name, req, t0)
            answer = work() if inline else await run_in_threadpool(work)
        except (ValidationError, HTTPException, RecursionError):  # the regular route answers it
            await fallback(scope, replay, send)
            return
        except RetrievoError as exc:  # the search itself refused it: answered as the route would
            self.counters["requests"] += 1
            await self.errors(exc)(scope, replay, send)
            return
        except Exception as exc:
            self.counters["requests"] += 1
            await unexpected(exc, scope)(scope, replay, send)
            return
        self.counters["requests"] += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [self._HEADERS, (b"content-length", b"%d" % len(answer))]})
        await send({"type": "http.response.body", "body": answer})


def unexpected(exc: BaseException, scope: dict) -> JSONResponse:
    """The answer to an exception nothing else handled: logged, then 400 (JSON nested past what the parsers
    follow), 507 (a full disk) or 500."""
    log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
    if isinstance(exc, RecursionError):
        return error_body(400, "ValidationError", "the request is nested too deeply")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return error_body(507, "InsufficientStorage", "the server's disk is full")
    return error_body(500, "InternalError", "internal error; see the server log")


class RetrievoApp(FastAPI):
    """The FastAPI app with :class:`FastSearch` in front of it (``fast_search``: None to go without)."""

    fast_search: FastSearch | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        fast = self.fast_search
        if fast is not None and scope["type"] == "http" and scope["method"] == "POST":
            m = fast.PATH.match(scope["path"])
            if m is not None:
                await fast(m.group(1), scope, receive, send, super().__call__)
                return
        await super().__call__(scope, receive, send)


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a JSON 500 (507 for a full disk) and the connection
    stays open. (Starlette's own last-resort handler re-raises after answering, and the server then closes
    the connection, so the client's next request on it fails with a reset.)"""

    def __init__(self, app: Any, counters: dict[str, int] | None = None) -> None:
        self.app = app
        self.counters = counters if counters is not None else {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counters["requests"] = self.counters.get("requests", 0) + 1
        started = False

        async def tracking(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:  # the answer is under way: nothing else can be said on this connection
                raise
            await unexpected(exc, scope)(scope, receive, send)

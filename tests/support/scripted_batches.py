"""The OpenAI Batch API (files + batches) for the scripted server in ``scripted_server.py``.

What it does:

* serves ``POST /v1/files`` (multipart ``file`` + ``purpose``), ``GET /v1/files/{id}/content``,
  ``POST /v1/batches``, ``GET /v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel``, in
  OpenAI's shapes (``openai.types.FileObject`` / ``Batch``);
* runs a created batch like OpenAI does: ``validating`` (every line must be JSON with a unique
  ``custom_id``, ``method: POST`` and the batch's ``url``, else the batch ``failed`` with
  ``errors``), ``in_progress`` for ``delay`` seconds, then every line is answered as one chat
  request of the server (same request counter, recorded bodies, queued ``inject`` faults and
  reply function, so every existing fake teacher works unchanged), and the batch ends
  ``completed`` with an output file (200 lines) and an error file (4xx/5xx lines);
* maps chat faults to batch semantics: a status fault becomes an error line with that
  ``status_code``; ``malformed`` a 200 line whose body is not a chat completion; ``timeout`` or
  ``drop`` a line not done in time: the batch ends ``expired`` and the line is in the error file
  with ``error.code == "batch_expired"``;
* injects HTTP faults on the Batch API calls themselves (``inject([...])``: the next files /
  batches calls answer those statuses), and counts ``files_uploaded``, ``batches_created``,
  ``lines_submitted``, ``retrieves``, ``downloads`` and the custom_ids of each batch
  (``batch_inputs``).

What it does NOT do: ``GET /v1/batches`` listing, file metadata or deletion, other endpoints
in batches, ``completion_window`` timing (only ``delay`` decides), or per-line latency. It
reaches into the owning ``ScriptedServer``'s lock, counters and fault queue on purpose: a batch
line is a chat request of that server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.scripted_server import Fault, ScriptedServer

TERMINAL = ("completed", "failed", "expired", "cancelled")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    from tests.support.scripted_server import _error_response  # (circular at import time)

    return _error_response(status, message, headers)


class BatchEndpoints:
    """Files + batches endpoints of one ``ScriptedServer`` (see module docstring)."""

    def __init__(self, server: ScriptedServer, delay: float = 0.0) -> None:
        self.server = server
        self.delay = delay
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, Any]] = {}  # id -> file object (+ "_data")
        self._batches: dict[str, dict[str, Any]] = {}
        self._injected: deque[Fault] = deque()
        self._counts: Counter[str] = Counter()
        self._inputs: list[list[str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)

    # ----------------------------------------------------------------- test-facing state
    def inject(self, faults: Iterable[Fault]) -> None:
        """The next Batch API calls (files / batches endpoints) answer these status faults."""
        faults = list(faults)
        if any(f.kind != "status" for f in faults):
            raise ValueError("Batch API faults must be status faults")
        with self._lock:
            self._injected.extend(faults)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def batch_inputs(self) -> list[list[str]]:
        """custom_ids of every created batch, in creation order."""
        with self._lock:
            return [list(ids) for ids in self._inputs]

    def statuses(self) -> dict[str, str]:
        with self._lock:
            return {bid: b["status"] for bid, b in self._batches.items()}

    # ----------------------------------------------------------------- handlers
    def _fault(self) -> web.Response | None:
        with self._lock:
            fault = self._injected.popleft() if self._injected else None
            if fault is not None:
                self._counts[f"api_status_{fault.status}"] += 1
        if fault is None:
            return None
        assert fault.status is not None
        ra = fault.retry_after
        headers = {} if ra is None else {"Retry-After": ra if isinstance(ra, str) else f"{ra:g}"}
        return _error(fault.status, f"scripted fault: HTTP {fault.status}", headers)

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        fid = f"file-{uuid.uuid4().hex[:24]}"
        obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed"}  # fmt: skip
        with self._lock:
            self._files[fid] = {**obj, "_data": data}
        return obj

    async def _upload(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField) or not isinstance(purpose, str):
            return _error(400, "multipart 'file' and 'purpose' are required")
        obj = self._add_file(upload.file.read(), upload.filename, purpose)
        with self._lock:
            self._counts["files_uploaded"] += 1
        return web.json_response(obj)

    def _lookup(self, table: dict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
        with self._lock:
            found = table.get(key)
            return dict(found) if found is not None else None

    async def _content(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        obj = self._lookup(self._files, request.match_info["id"])
        if obj is None:
            return _error(404, "no such file")
        with self._lock:
            self._counts["downloads"] += 1
        return web.Response(body=obj["_data"], content_type="application/octet-stream")

    async def _create(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        body = json.loads(await request.read())
        source = self._lookup(self._files, str(body.get("input_file_id")))
        if source is None:
            return _error(400, "input_file_id does not name an uploaded file")
        now = int(time.time())
        batch = {"id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch",
                 "endpoint": body.get("endpoint"), "input_file_id": source["id"],
                 "completion_window": body.get("completion_window", "24h"),
                 "status": "validating", "created_at": now, "expires_at": now + 86400,
                 "output_file_id": None, "error_file_id": None, "errors": None,
                 "metadata": body.get("metadata"),
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}}  # fmt: skip
        with self._lock:
            self._batches[batch["id"]] = batch
            self._counts["batches_created"] += 1
        task = asyncio.get_running_loop().create_task(self._run(batch["id"], source["_data"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(batch)

    async def _retrieve(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        with self._lock:
            self._counts["retrieves"] += 1
        batch = self._lookup(self._batches, request.match_info["id"])
        if batch is None:
            return _error(404, "no such batch")
        return web.json_response(batch)

    async def _cancel(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        with self._lock:
            batch = self._batches.get(request.match_info["id"])
            if batch is not None and batch["status"] not in TERMINAL:
                batch["status"] = "cancelling"
            snapshot = dict(batch) if batch is not None else None
        if snapshot is None:
            return _error(404, "no such batch")
        return web.json_response(snapshot)

    # ----------------------------------------------------------------- batch processing
    def _update(self, bid: str, **fields: Any) -> None:
        with self._lock:
            self._batches[bid].update(fields)

    def _parse(self, bid: str, data: bytes) -> list[dict[str, Any]] | str:
        """The batch's lines, or why the input is invalid."""
        endpoint = self._batches[bid]["endpoint"]
        lines, seen = [], set()
        for n, raw in enumerate(data.decode("utf-8").splitlines(), 1):
            try:
                line = json.loads(raw)
            except ValueError:
                return f"line {n} is not JSON"
            cid = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(cid, str) or cid in seen:
                return f"line {n}: custom_id missing or duplicated"
            if line.get("method") != "POST" or line.get("url") != endpoint:
                return f"line {n}: method must be POST and url {endpoint}"
            if not isinstance(line.get("body"), dict):
                return f"line {n}: body must be an object"
            seen.add(cid)
            lines.append(line)
        return lines or "the input file is empty"

    async def _run(self, bid: str, data: bytes) -> None:
        parsed = self._parse(bid, data)
        if isinstance(parsed, str):
            error = {"code": "invalid_request", "message": parsed, "line": None, "param": None}
            self._update(bid, status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": [error]})  # fmt: skip
            return
        with self._lock:
            self._inputs.append([line["custom_id"] for line in parsed])
            self._counts["lines_submitted"] += len(parsed)
        total = len(parsed)
        self._update(bid, status="in_progress", in_progress_at=int(time.time()),
                     request_counts={"total": total, "completed": 0, "failed": 0})  # fmt: skip
        await self.server._sleep(self.delay)
        out, err, expired = [], [], False
        for line in parsed:
            status, payload = self._answer(line["body"])
            entry: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex[:16]}",
                                     "custom_id": line["custom_id"], "error": None}  # fmt: skip
            if status is None:
                expired = True
                entry["response"] = None
                entry["error"] = {"code": "batch_expired", "message": "not done in time"}
            else:
                entry["response"] = {"status_code": status, "request_id": entry["id"],
                                     "body": payload}  # fmt: skip
            (out if status == 200 else err).append(json.dumps(entry))
        self._update(bid, status="finalizing", finalizing_at=int(time.time()))
        fields: dict[str, Any] = {
            "request_counts": {"total": total, "completed": len(out), "failed": len(err)},
            "output_file_id": self._result_file(bid, "output", out),
            "error_file_id": self._result_file(bid, "error", err),
        }
        with self._lock:
            cancelled = self._batches[bid]["status"] == "cancelling"
        final = "cancelled" if cancelled else "expired" if expired else "completed"
        self._update(bid, status=final, **{f"{final}_at": int(time.time())}, **fields)

    def _result_file(self, bid: str, kind: str, lines: list[str]) -> str | None:
        if not lines:
            return None
        data = ("\n".join(lines) + "\n").encode("utf-8")
        return str(self._add_file(data, f"{bid}_{kind}.jsonl", "batch_output")["id"])

    def _answer(self, body: dict[str, Any]) -> tuple[int | None, Any]:
        """Answer one line as a chat request: (status, body), or (None, None) if not done."""
        from tests.support.scripted_server import _ERROR_TYPES, Fault

        srv = self.server
        index, fault = srv._admit(body)
        if fault is None:
            try:
                outcome = srv._reply(body, index)
            except Exception as exc:  # a bug in a test's reply function
                outcome = Fault(status=500, body=f"reply function raised {type(exc).__name__}")
            if not isinstance(outcome, Fault):
                srv._count(200)
                return 200, srv._completion(body, index, str(outcome))
            fault = outcome
        if fault.kind == "status":
            assert fault.status is not None
            srv._count(fault.status, fault)
            error_type = _ERROR_TYPES.get(fault.status, "server_error")
            message = f"scripted fault: HTTP {fault.status}"
            return fault.status, {"error": {"message": message, "type": error_type}}
        srv._count(200, fault)
        if fault.kind == "malformed":
            text = fault.body if fault.body is not None else '{"choices": ['
            try:
                return 200, json.loads(text)
            except ValueError:
                return 200, text
        return None, None  # timeout / drop: the line is not done when the window ends

"""A local stand-in of the Hugging Face Hub HTTP API on 127.0.0.1, for ``mathsynth push`` tests.

It serves the endpoints ``huggingface_hub`` calls to create a dataset repo and commit to it:
``POST /api/repos/create`` (409 with the URL if it exists), ``POST /api/validate-yaml`` (400
when the card's front matter is not a YAML mapping), ``POST .../preupload/<rev>`` (every file
"regular", so contents travel in the commit itself, base64), ``GET .../tree/<rev>`` and ``POST
.../commit/<rev>`` (NDJSON: header, files, deletions), applied atomically to an in-memory repo.
Every request needs ``Authorization: Bearer <token>`` (401 otherwise) and is recorded, so a test
can check what was sent. It does not implement LFS or Xet transfers, branches or history.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class HubStandIn:
    def __init__(self, token: str = "hf_standin_token") -> None:
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}  # "datasets/ns/name" -> path -> content
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.commits: list[list[dict[str, Any]]] = []  # NDJSON lines of each commit
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str) -> dict[str, bytes]:
        return dict(self.repos[f"datasets/{repo_id}"])

    def checkout(self, repo_id: str, target: Path) -> Path:
        """Write the repo's files under ``target`` (a clone, for ``datasets`` to load)."""
        for path, content in self.files(repo_id).items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            (target / path).write_bytes(content)
        return target

    # -- the API --------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            data = json.loads(body)
            repo = f"{data.get('type', 'model')}s/{data['organization']}/{data['name']}"
            url = f"{self.endpoint}/{repo}"
            if repo in self.repos:
                return 409, {"error": "You already created this dataset repo", "url": url}
            self.repos[repo] = {".gitattributes": b"*.parquet filter=lfs\n"}
            return 200, {"url": url}
        if path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            meta = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else None
            if not isinstance(meta, dict):
                return 400, {"errors": [{"message": "front matter is not a mapping"}]}
            return 200, {"errors": [], "warnings": []}
        repo = "/".join(parts[1:4])  # datasets/ns/name
        if parts[0] != "api" or len(parts) < 6 or repo not in self.repos:
            return 404, {"error": f"no such repo or endpoint: {path}"}
        action = parts[4]
        if method == "POST" and action == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                    "shouldIgnore": False, "oid": None} for f in files]}  # fmt: skip
        if method == "GET" and action == "tree":
            return 200, [{"type": "file", "path": p, "size": len(c),
                          "oid": hashlib.sha1(c).hexdigest()}
                         for p, c in sorted(self.repos[repo].items())]  # fmt: skip
        if method == "POST" and action == "commit":
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            files = dict(self.repos[repo])
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "deletedFile":
                    if value["path"] not in files:
                        return 404, {"error": "A file with this name doesn't exist"}
                    del files[value["path"]]
                else:
                    return 400, {"error": f"unsupported operation {line['key']}"}
            self.repos[repo] = files
            self.commits.append(lines)
            oid = hashlib.sha1(body).hexdigest()
            return 200, {"commitUrl": f"{self.endpoint}/{repo}/commit/{oid}", "commitOid": oid}
        return 404, {"error": f"unsupported: {method} {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                with hub.lock:
                    hub.requests.append((method, path))
                    if self.headers.get("Authorization") != f"Bearer {hub.token}":
                        status, payload = 401, {"error": "Invalid credentials"}
                    else:
                        status, payload = hub.handle(method, path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: object) -> None:
                pass

        return Handler

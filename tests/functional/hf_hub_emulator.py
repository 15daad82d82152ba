"""Hugging Face hub emulator: serves model repositories from local folders to the real `huggingface_hub` client and
to our own downloader (plugins/module_utils/_hf_download.py). Stdlib only, so the story can run it with any python3.

A stand-in for https://huggingface.co, faithful where the client (huggingface_hub 2.4.0, the version in vLLM's image)
can tell; every behaviour below names the client function it satisfies:

- GET /api/models/{repo}[/revision/{rev}][?blobs=true]: `HfApi.model_info` (hf_api.py): `sha`, `siblings`
  [{rfilename}] and, with `blobs=true` (`files_metadata=True`), `size`, `blobId`, `lfs` {size, sha256, pointerSize}
  as parsed by `ModelInfo.__init__`. Metadata of a gated repo is public, as on the hub: only files are gated.
- GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&expand=: `HfApi._iter_repo_tree_pages` (hf_api.py), called by
  `snapshot_download` (_snapshot_download.py); entries {type, oid, size, path, lfs {oid, size, pointerSize}} as parsed
  by `RepoFile.__init__`, paged with a `Link: <...>; rel="next"` header (`_paginate_pages`, utils/_pagination.py).
- POST /api/models/{repo}/paths-info/{rev} (form `paths=...`): `HfApi.get_paths_info`.
- GET /api/models/{repo}/auth-check: `HfApi.auth_check` (200, or the gated/not-found errors below).
- HEAD/GET /{repo}/resolve/{rev}/{file}: `get_hf_file_metadata` and `_get_metadata_or_catch_error`
  (file_download.py) read X-Repo-Commit, X-Linked-Etag or ETag (normalised by `_normalize_etag`), X-Linked-Size or
  Content-Length. A git file answers 200 with `ETag: "<git blob sha1>"`. An LFS file (by .gitattributes pattern, or
  over 10 MiB as the hub enforces) answers 302 to a signed URL on a separate origin, the "CDN" listener, with
  X-Linked-Etag = its sha256 and X-Linked-Size: `_httpx2_follow_hub_redirects_with_backoff` (utils/_http.py) stops
  at a redirect off the hub's origin (`_is_same_or_hub_host` compares scheme, host and port) and the client then
  drops its Authorization header for the CDN. Like an S3 signed URL, the CDN refuses a request that also carries an
  Authorization header (400), so a client that leaks its token there fails here.
- Range requests answer 206 with Content-Range (resume in `http_get`, file_download.py, via `_adjust_range_header`),
  416 with `Content-Range: bytes */size` for an unsatisfiable range (`hf_raise_for_status` reads it).
- Errors carry X-Error-Code / X-Error-Message headers and a JSON `{"error": ...}` body, which `hf_raise_for_status`
  (utils/_http.py) maps to the client's exceptions:
    no token, gated repo             -> 401 GatedRepo   -> GatedRepoError
    valid token not granted          -> 403 GatedRepo   -> GatedRepoError
    unknown repo, no token           -> 401 RepoNotFound -> RepositoryNotFoundError
    unknown repo, valid token        -> 404 RepoNotFound -> RepositoryNotFoundError
    unknown revision                 -> 404 RevisionNotFound -> RevisionNotFoundError
    unknown file                     -> 404 EntryNotFound (+ X-Repo-Commit, read to fill `.no_exist`)
    token the hub does not know      -> 401 "Invalid credentials in Authorization header", no error code
                                        (the one 401 `hf_raise_for_status` does not turn into RepositoryNotFoundError)
  Messages as the real hub words them, seen in public reports: 401 gated "Access to model X is restricted. You must
  have access to it and be authenticated to access it. Please log in." (github.com/ToTheBeginning/PuLID/issues/97);
  unauthenticated unknown repo "Invalid username or password." (github.com/mudler/LocalAI/issues/6238); invalid
  token (github.com/huggingface/huggingface_hub/issues/3368); "Invalid rev id: v1.0.0"
  (github.com/SAP-samples/sap-rpt-1-oss/pull/4); the 401-vs-404 rule for unknown repos
  (github.com/huggingface/datasets/pull/4472, huggingface/transformers/pull/17651).

Not emulated: Xet storage (no X-Xet-* headers are sent, so the client downloads over plain HTTP as it does for a
non-Xet repo), private repos, branches other than `main`, commits history, uploads.

Test switches: a rate limit for file bodies (bytes/s, shared by all connections: a limited link), dropping the
connection once after N bytes of a file body (to test resume), counters (requests per method and path, body bytes per
path, ranges asked, Authorization headers seen by the CDN), TLS. GET /_emulator/stats returns the counters as JSON.

  python3 tests/functional/hf_hub_emulator.py --repo mistralai/Mistral-7B-Instruct-v0.2=DIR \
      [--gated-token-file FILE] [--valid-token-file FILE] --host H --port P [--cdn-port P2] [--rate BYTES_PER_S] \
      [--certfile C --keyfile K]
prints one JSON line {"endpoint": ..., "cdn": ...} once listening, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

# Patterns of the hub's default .gitattributes for model repos (the ones that matter for a model's files).
DEFAULT_LFS_PATTERNS = (
    "*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.onnx", "*.model", "*.gguf", "*.zip",
)  # fmt: skip
# The hub refuses non-LFS files over 10 MiB, so a big file is always an LFS file.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
CHUNK = 16 * 1024
SIGNED_URL_TTL = 3600


class RepoFile:
    """One file of a repository: git blob id, and for LFS files the sha256 and the pointer's size."""

    def __init__(self, name: str, path: Optional[str], content: Optional[bytes], lfs_patterns: Iterable[str]):
        self.name = name
        self.path = path  # on disk, or None for generated content
        self.content = content
        size, sha256 = _size_and_sha256(path, content)
        self.size = size
        self.sha256 = sha256
        self.lfs = size > LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, p) for p in lfs_patterns)
        if self.lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
            self.pointer_size = len(pointer)
            self.oid = _git_blob_oid(pointer)
        else:
            self.pointer_size = 0
            self.oid = _git_blob_sha1(path, content, size)

    @property
    def etag(self) -> str:
        # hf_hub_url's docstring (file_download.py): an object's ETag is its git-sha1, or its sha256 if in git-lfs.
        return self.sha256 if self.lfs else self.oid

    def read(self, start: int, end: int) -> Iterable[bytes]:
        if self.content is not None:
            for pos in range(start, end, CHUNK):
                yield self.content[pos : min(pos + CHUNK, end)]
            return
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    return
                left -= len(data)
                yield data


class Repo:
    def __init__(
        self,
        repo_id: str,
        folder: str,
        gated: bool = False,
        granted_tokens: Iterable[str] = (),
        lfs_patterns: Iterable[str] = DEFAULT_LFS_PATTERNS,
    ):
        self.repo_id = repo_id
        self.gated = gated
        self.granted_tokens: Set[str] = set(granted_tokens)
        patterns = tuple(lfs_patterns)
        gitattributes = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in patterns).encode()
        files = [RepoFile(".gitattributes", None, gitattributes, ())]
        for root, _dirs, names in os.walk(folder):
            for name in sorted(names):
                full = os.path.join(root, name)
                files.append(RepoFile(os.path.relpath(full, folder).replace(os.sep, "/"), full, None, patterns))
        self.files: Dict[str, RepoFile] = {f.name: f for f in sorted(files, key=lambda f: f.name)}
        # A fixed fake commit per repo content: 40 hex digits, as REGEX_COMMIT_HASH (file_download.py) wants.
        digest = hashlib.sha1(repo_id.encode(), usedforsecurity=False)
        for f in self.files.values():
            digest.update(f"{f.name}:{f.oid}\n".encode())
        self.sha = digest.hexdigest()

    def resolve(self, revision: str) -> Optional[str]:
        return self.sha if revision in ("main", self.sha) else None


class HubError(Exception):
    def __init__(self, status: int, code: Optional[str], message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class _Link:
    """Rate limit shared by every connection (a limited link), and the once-only connection drop."""

    def __init__(self, rate: Optional[float]):
        self.rate = rate
        self.free_at = 0.0
        self.lock = threading.Lock()

    def wait(self, nbytes: int) -> None:
        if not self.rate:
            return
        with self.lock:
            start = max(time.monotonic(), self.free_at)
            self.free_at = start + nbytes / self.rate
            done = self.free_at
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class HubEmulator:
    """Two listeners on one host: the hub (API + resolve) and the CDN (signed LFS URLs), as two origins."""

    def __init__(
        self,
        repos: Iterable[Repo],
        host: str = "127.0.0.76",
        port: int = 0,
        cdn_port: int = 0,
        valid_tokens: Iterable[str] = (),
        rate: Optional[float] = None,
        drop_after_bytes: Optional[int] = None,
        certfile: Optional[str] = None,
        keyfile: Optional[str] = None,
        tree_page_size: int = 1000,
    ):
        self.repos: Dict[str, Repo] = {r.repo_id: r for r in repos}
        self.valid_tokens: Set[str] = set(valid_tokens)
        for repo in self.repos.values():
            self.valid_tokens |= repo.granted_tokens
        self.link = _Link(rate)
        self.drop_after_bytes = drop_after_bytes
        self.tree_page_size = tree_page_size
        self.fail_next: List[int] = []  # statuses to answer to the next requests of /resolve or the CDN (5xx, 429)
        self._secret = os.urandom(16)
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (method, path) -> count
        self.body_bytes: Counter = Counter()  # path -> file body bytes sent
        self.ranges: List[Tuple[str, str]] = []  # (path, Range header)
        self.cdn_authorization_seen = 0
        self.drops = 0
        self._hub = self._make_server(host, port, _HubHandler, certfile, keyfile)
        self._cdn = self._make_server(host, cdn_port, _CdnHandler, certfile, keyfile)
        scheme = "https" if certfile else "http"
        self.endpoint = f"{scheme}://{_netloc(host, self._hub.server_address[1])}"
        self.cdn = f"{scheme}://{_netloc(host, self._cdn.server_address[1])}"
        self._threads: List[threading.Thread] = []

    def _make_server(self, host, port, handler, certfile, keyfile) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        server.emulator = self  # type: ignore[attr-defined]
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    # -- life cycle --------------------------------------------------------------------------------------------------
    def start(self) -> HubEmulator:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- counters ----------------------------------------------------------------------------------------------------
    def count(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[(method, path)] += 1

    def add_body_bytes(self, path: str, n: int) -> None:
        with self._lock:
            self.body_bytes[path] += n

    def total_body_bytes(self) -> int:
        return sum(self.body_bytes.values())

    def requests_matching(self, method: str, fragment: str) -> int:
        return sum(n for (m, p), n in self.requests.items() if m == method and fragment in p)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.body_bytes.clear()
            self.ranges.clear()
            self.cdn_authorization_seen = 0
            self.drops = 0

    def stats(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "requests": {f"{m} {p}": n for (m, p), n in sorted(self.requests.items())},
                "body_bytes": dict(self.body_bytes),
                "total_body_bytes": sum(self.body_bytes.values()),
                "ranges": list(self.ranges),
                "cdn_authorization_seen": self.cdn_authorization_seen,
                "drops": self.drops,
            }

    def take_drop(self, body_size: int) -> Optional[int]:
        """Byte offset at which to cut this body, once (only bodies longer than the offset)."""
        with self._lock:
            if self.drop_after_bytes is not None and body_size > self.drop_after_bytes:
                offset, self.drop_after_bytes = self.drop_after_bytes, None
                self.drops += 1
                return offset
        return None

    def take_failure(self) -> Optional[int]:
        with self._lock:
            return self.fail_next.pop(0) if self.fail_next else None

    # -- signed CDN URLs ---------------------------------------------------------------------------------------------
    def sign(self, sha256: str, expires: int) -> str:
        return hmac.new(self._secret, f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, f: RepoFile) -> str:
        expires = int(time.time()) + SIGNED_URL_TTL
        return f"{self.cdn}/repos/lfs/{f.sha256}?X-Amz-Expires={expires}&X-Amz-Signature={self.sign(f.sha256, expires)}"

    # -- hub rules ---------------------------------------------------------------------------------------------------
    def token_of(self, authorization: Optional[str]) -> Optional[str]:
        if not authorization:
            return None
        scheme, _sep, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token not in self.valid_tokens:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return token

    def find_repo(self, repo_id: str, token: Optional[str]) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            # The hub answers 401 to an anonymous request for a missing (or private) repo, 404 to an authenticated one.
            if token is None:
                raise HubError(401, "RepoNotFound", "Invalid username or password.")
            raise HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def check_file_access(self, repo: Repo, token: Optional[str]) -> None:
        if not repo.gated or token in repo.granted_tokens:
            return
        if token is None:
            raise HubError(
                401,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated to "
                "access it. Please log in.",
            )
        raise HubError(
            403,
            "GatedRepo",
            f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. Visit "
            f"{self.endpoint}/{repo.repo_id} to ask for access.",
        )

    def resolve(self, repo: Repo, revision: str) -> str:
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _size_and_sha256(path: Optional[str], content: Optional[bytes]) -> Tuple[int, str]:
    digest = hashlib.sha256()
    if content is not None:
        digest.update(content)
        return len(content), digest.hexdigest()
    assert path is not None
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _git_blob_sha1(path: Optional[str], content: Optional[bytes], size: int) -> str:
    digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    if content is not None:
        digest.update(content)
    else:
        assert path is not None
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _parse_range(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """(start, end exclusive) of a single `bytes=` range; None = whole body; ValueError = unsatisfiable."""
    if not header:
        return None
    unit, _sep, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # servers may ignore what they do not support and send the whole body
    first, _sep, last = spec.strip().partition("-")
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    if start >= size or start >= end:
        raise ValueError(header)
    return start, end


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hf-hub-emulator"

    @property
    def emulator(self) -> HubEmulator:
        return self.server.emulator  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counters, not logs
        pass

    def _send(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None, ctype: str = "") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", os.urandom(8).hex())
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: Optional[Dict[str, str]] = None) -> None:
        self._send(status, json.dumps(data).encode(), headers, "application/json; charset=utf-8")

    def _error(self, err: HubError) -> None:
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message
        self._json(err.status, {"error": err.message}, headers)

    def _serve_body(self, path: str, f: RepoFile, headers: Dict[str, str]) -> None:
        """200 or 206 with the file's bytes, rate-limited, maybe cut once; 416 for a range past the end."""
        try:
            span = _parse_range(self.headers.get("Range"), f.size)
        except ValueError:
            self._send(416, b"", {**headers, "Content-Range": f"bytes */{f.size}"})
            return
        start, end = span if span else (0, f.size)
        if span:
            self.emulator.ranges.append((path, self.headers.get("Range", "")))
        self.send_response(206 if span else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = self.emulator.take_drop(end - start)
        sent = 0
        for chunk in f.read(start, end):
            if cut is not None and sent + len(chunk) > cut:
                chunk = chunk[: cut - sent]
                self.emulator.link.wait(len(chunk))
                self.emulator.add_body_bytes(path, len(chunk))
                self.wfile.write(chunk)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.emulator.link.wait(len(chunk))
            # Counted before the write: a client that has read the last byte may already check the counters.
            self.emulator.add_body_bytes(path, len(chunk))
            self.wfile.write(chunk)
            sent += len(chunk)

    def _injected_failure(self) -> bool:
        status = self.emulator.take_failure()
        if status is None:
            return False
        self._json(status, {"error": "emulated failure"}, {"Retry-After": "1"} if status == 429 else None)
        return True


class _HubHandler(_BaseHandler):
    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        self.emulator.count(self.command, path)
        try:
            if path == "/_emulator/stats":
                self._json(200, self.emulator.stats())
                return
            token = self.emulator.token_of(self.headers.get("Authorization"))
            if path.startswith("/api/models/"):
                self._api(path[len("/api/models/") :], query, token)
            elif "/resolve/" in path:
                self._resolve(path, token)
            else:
                self._json(404, {"error": "Not Found"})
        except HubError as err:
            self._error(err)

    def _api(self, rest: str, query: Dict[str, List[str]], token: Optional[str]) -> None:
        parts = rest.split("/")
        if len(parts) < 2:
            raise HubError(404, None, "Not Found")
        repo = self.emulator.find_repo("/".join(parts[:2]), token)
        tail = parts[2:]
        if not tail and self.command == "GET":  # model_info without revision: the default branch
            self._model_info(repo, "main", query)
        elif tail[:1] == ["revision"] and len(tail) >= 2 and self.command == "GET":
            self._model_info(repo, "/".join(tail[1:]), query)
        elif tail[:1] == ["tree"] and len(tail) >= 2 and self.command == "GET":
            self._tree(repo, tail[1], "/".join(tail[2:]), query)
        elif tail[:1] == ["paths-info"] and len(tail) >= 2 and self.command == "POST":
            self._paths_info(repo, tail[1])
        elif tail == ["auth-check"] and self.command == "GET":
            self.emulator.check_file_access(repo, token)
            self._json(200, {"access": True})
        else:
            raise HubError(404, None, "Not Found")

    def _model_info(self, repo: Repo, revision: str, query: Dict[str, List[str]]) -> None:
        sha = self.emulator.resolve(repo, revision)
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for f in repo.files.values():
            sibling: Dict[str, Any] = {"rfilename": f.name}
            if blobs:
                sibling.update(size=f.size, blobId=f.oid)
                if f.lfs:
                    sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            siblings.append(sibling)
        self._json(
            200,
            {
                "_id": repo.sha[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": sha,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "tags": ["safetensors", "mistral", "text-generation"],
                "pipeline_tag": "text-generation",
                "library_name": "transformers",
                "siblings": siblings,
                "lastModified": "2024-01-01T00:00:00.000Z",
                "createdAt": "2023-12-11T00:00:00.000Z",
            },
        )

    @staticmethod
    def _entry(f: RepoFile) -> Dict[str, Any]:
        entry: Dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.name}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
        return entry

    def _tree(self, repo: Repo, revision: str, folder: str, query: Dict[str, List[str]]) -> None:
        self.emulator.resolve(repo, revision)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries: List[Dict[str, Any]] = []
        dirs: Set[str] = set()
        for f in repo.files.values():
            if not f.name.startswith(prefix):
                continue
            rest = f.name[len(prefix) :]
            for i, _part in enumerate(rest.split("/")[:-1]):  # folders on the way, listed once
                d = prefix + "/".join(rest.split("/")[: i + 1])
                if d not in dirs and (recursive or i == 0):
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": _git_blob_oid(d.encode()), "size": 0, "path": d})
            if recursive or "/" not in rest:
                entries.append(self._entry(f))
        if prefix and not entries:
            raise HubError(404, "EntryNotFound", f'{folder} does not exist on "{revision}"')
        cursor = int(query.get("cursor", ["0"])[0])
        page = entries[cursor : cursor + self.emulator.tree_page_size]
        headers = {}
        if cursor + self.emulator.tree_page_size < len(entries):
            next_url = (
                f"{self.emulator.endpoint}/api/models/{repo.repo_id}/tree/{quote(revision, safe='')}"
                f"{'/' + quote(folder) if folder else ''}?recursive={str(recursive).lower()}&expand=false"
                f"&cursor={cursor + self.emulator.tree_page_size}"
            )
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._json(200, page, headers)

    def _paths_info(self, repo: Repo, revision: str) -> None:
        self.emulator.resolve(repo, revision)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        wanted = form.get("paths", [])
        self._json(200, [self._entry(repo.files[p]) for p in wanted if p in repo.files])

    def _resolve(self, path: str, token: Optional[str]) -> None:
        if self.command not in ("GET", "HEAD"):
            raise HubError(405, None, "Method Not Allowed")
        repo_part, _sep, rest = path.lstrip("/").partition("/resolve/")
        repo = self.emulator.find_repo(repo_part, token)
        revision, _sep, filename = rest.partition("/")
        self.emulator.check_file_access(repo, token)
        sha = self.emulator.resolve(repo, revision)
        f = repo.files.get(filename)
        if f is None:
            raise HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
        if self._injected_failure():
            return
        if f.lfs:
            self._send(
                302,
                b"Found. Redirecting",
                {
                    "Location": self.emulator.signed_url(f),
                    "X-Repo-Commit": sha,
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": str(f.size),
                    "ETag": f'"{f.oid}"',
                },
                "text/plain; charset=utf-8",
            )
            return
        self._serve_body(path, f, {"X-Repo-Commit": sha, "ETag": f'"{f.oid}"'})


class _CdnHandler(_BaseHandler):
    server_version = "AmazonS3"

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.emulator.count(self.command, split.path)
        query = parse_qs(split.query)
        if self.headers.get("Authorization"):
            with self.emulator._lock:
                self.emulator.cdn_authorization_seen += 1
            # What S3 answers to a signed URL sent with an Authorization header too.
            self._json(400, {"error": "Only one auth mechanism allowed"})
            return
        sha256 = split.path.rsplit("/", 1)[-1]
        try:
            expires = int(query["X-Amz-Expires"][0])
            signature = query["X-Amz-Signature"][0]
        except (KeyError, ValueError):
            self._json(403, {"error": "AccessDenied"})
            return
        if expires < time.time() or not hmac.compare_digest(signature, self.emulator.sign(sha256, expires)):
            self._json(403, {"error": "Request has expired or signature does not match"})
            return
        f = next(
            (f for r in self.emulator.repos.values() for f in r.files.values() if f.lfs and f.sha256 == sha256), None
        )
        if f is None:
            self._json(404, {"error": "NoSuchKey"})
            return
        if self._injected_failure():
            return
        self._serve_body(split.path, f, {"ETag": f'"{sha256}"'})


def _read_token_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Hugging Face hub emulator (a test stand-in)")
    parser.add_argument("--repo", action="append", default=[], metavar="ID=DIR", help="serve DIR as repo ID")
    parser.add_argument(
        "--gated-token-file", action="append", default=[], help="file holding a token granted on every repo; "
        "any such option makes every repo gated (a file, so the token is not in argv)",
    )  # fmt: skip
    parser.add_argument("--valid-token-file", action="append", default=[], help="a known token, granted on nothing")
    parser.add_argument("--host", default="127.0.0.76")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdn-port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=None, help="bytes/s for file bodies, shared by all connections")
    parser.add_argument("--drop-after-bytes", type=int, default=None, help="cut one file body after N bytes, once")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args(argv)
    granted = [_read_token_file(p) for p in args.gated_token_file]
    repos = []
    for spec in args.repo:
        repo_id, sep, folder = spec.partition("=")
        if not sep or repo_id.count("/") != 1 or not os.path.isdir(folder):
            parser.error(f"--repo {spec!r}: expected ORG/NAME=EXISTING_DIR")
        repos.append(Repo(repo_id, folder, gated=bool(granted), granted_tokens=granted))
    emulator = HubEmulator(
        repos,
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
        valid_tokens=[_read_token_file(p) for p in args.valid_token_file],
        rate=args.rate,
        drop_after_bytes=args.drop_after_bytes,
        certfile=args.certfile,
        keyfile=args.keyfile,
    ).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({"endpoint": emulator.endpoint, "cdn": emulator.cdn}), flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

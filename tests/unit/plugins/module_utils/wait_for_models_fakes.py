# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Local servers for the wait_for_models tests: an OpenAI-style HTTP server on 127.0.0.1 and a fake Docker engine
on a unix socket that answers inspect and logs in the engine's real formats (JSON; chunked, multiplexed log stream).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Reply:
    def __init__(self, status=200, body=None, delay=0.0):
        self.status = status
        self.body = body
        self.delay = delay

    def encoded(self):
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body if self.body is not None else {}).encode()


def models_body(*ids):
    return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "vllm"} for i in ids]}


def completion_body(text=" the"):
    return {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": text}]}


class _OpenAIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def _handle(self, method):
        app = self.server.app
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        app.requests.append({"method": method, "path": path, "headers": dict(self.headers), "body": body})
        route = app.routes.get((method, path))
        reply = route(app) if route else Reply(404, {"detail": "Not Found"})
        if reply.delay:
            time.sleep(reply.delay)
        data = reply.encoded()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (request_timeout)
            pass

    def do_GET(self):  # pylint: disable=invalid-name
        self._handle("GET")

    def do_POST(self):  # pylint: disable=invalid-name
        self._handle("POST")


class FakeOpenAIServer:
    """OpenAI-compatible server on 127.0.0.1; `routes` maps (method, path) to a callable(app) -> Reply."""

    def __init__(self, routes=None, port=0, api_key=None):
        self.routes = dict(routes or {})
        self.requests = []
        self.api_key = api_key
        self.started_at = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _OpenAIHandler)
        self._httpd.daemon_threads = True
        self._httpd.app = self
        self.port = self._httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, path):
        return sum(1 for r in self.requests if r["path"] == path)

    def last_authorized(self):
        """True if the last request carried the expected bearer key."""
        return self.requests[-1]["headers"].get("Authorization") == "Bearer %s" % self.api_key

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def free_port():
    """A loopback port nobody listens on right now (connection refused until a server takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- fake Docker engine ---------------------------------------------------------------------------------------------


class FakeContainer:
    """Mutable container state; tests call exit()/restart() while the waiter polls."""

    def __init__(self, name, tty=False):
        self.name = name
        self.container_id = "f" * 64
        self.status = "running"
        self.restart_count = 0
        self.exit_code = 0
        self.error = ""
        self.oom_killed = False
        self.tty = tty
        self.started_at = "2026-11-25T09:43:14.893552845Z"
        self.logs = []  # (stream number 1=stdout 2=stderr, text line)
        self.lock = threading.Lock()

    def log(self, text, stream=1):
        with self.lock:
            self.logs.append((stream, text))

    def exit(self, code=1):
        with self.lock:
            self.status = "exited"
            self.exit_code = code

    def restart(self, code=1):
        with self.lock:
            self.restart_count += 1
            self.exit_code = code
            self.started_at = "2026-11-25T09:50:%02d.000000001Z" % (self.restart_count % 60)

    def inspect_json(self):
        with self.lock:
            running = self.status == "running"
            return {
                "Id": self.container_id,
                "Name": "/" + self.name,
                "RestartCount": self.restart_count,
                "State": {
                    "Status": self.status,
                    "Running": running,
                    "Paused": False,
                    "Restarting": self.status == "restarting",
                    "OOMKilled": self.oom_killed,
                    "Dead": False,
                    "Pid": 4242 if running else 0,
                    "ExitCode": self.exit_code,
                    "Error": self.error,
                    "StartedAt": self.started_at,
                    "FinishedAt": "0001-01-01T00:00:00Z",
                },
                "Config": {"Tty": self.tty, "Image": "oci-vllm-test/vllm-cpu:test"},
                "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {}}},
            }

    def log_stream(self, tail):
        with self.lock:
            lines = self.logs[-tail:] if tail else []
        out = b""
        for stream, text in lines:
            payload = (text + "\n").encode()
            out += payload if self.tty else struct.pack(">BxxxI", stream, len(payload)) + payload
        return out


class _DockerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def address_string(self):
        return "unix"

    def _send(self, status, data, chunked=False):
        self.send_response(status)
        self.send_header("Api-Version", "1.41")
        self.send_header("Server", "Docker/20.10.24+dfsg1 (linux) (FAKE for unit tests)")
        if chunked:  # the real engine streams logs chunked, without Content-Type at API 1.41
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 7):  # small chunks: frames straddle chunk boundaries
                piece = data[start : start + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_GET(self):  # pylint: disable=invalid-name
        engine = self.server.engine
        parts = urlsplit(self.path)
        engine.requests.append(parts.path)
        segments = parts.path.strip("/").split("/")
        container = engine.containers.get(segments[1]) if len(segments) == 3 and segments[0] == "containers" else None
        if container is None:
            name = segments[1] if len(segments) > 1 else ""
            self._send(404, json.dumps({"message": "No such container: %s" % name}).encode())
        elif segments[2] == "json":
            self._send(200, json.dumps(container.inspect_json()).encode())
        elif segments[2] == "logs":
            tail = int(parse_qs(parts.query).get("tail", ["all"])[0])
            self._send(200, container.log_stream(tail), chunked=True)
        else:
            self._send(404, b'{"message": "page not found"}')


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request = super().get_request()[0]
        return request, ("unix", 0)


class FakeDockerEngine:
    """Docker engine stand-in on a unix socket in a fresh temp dir."""

    def __init__(self):
        self.containers = {}
        self.requests = []
        self._dir = tempfile.mkdtemp(prefix="wfm-docker-")
        self.socket_path = os.path.join(self._dir, "docker.sock")
        self._server = _UnixHTTPServer(self.socket_path, _DockerHandler)
        self._server.engine = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, name, tty=False):
        container = FakeContainer(name, tty=tty)
        self.containers[name] = container
        return container

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Read-only Docker Engine API client over the engine's unix socket, stdlib only.

Targets have the Docker engine but not necessarily the docker SDK or CLI, so this talks HTTP to the socket
with http.client: no extra dependency, no process fork per poll, and the engine's own JSON instead of CLI text.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
from typing import Any, Dict, NamedTuple, Optional, Tuple
from urllib.parse import quote, urlencode

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"

# Statuses in which a watched container can still come up to serve; anything else is a failure.
_PENDING_STATUSES = ("created",)
_RUNNING_STATUSES = ("running",)


class DockerEngineError(Exception):
    """The engine could not be asked (socket missing, permission denied, unexpected answer)."""


class ContainerNotFound(DockerEngineError):
    """The engine has no container of that name."""


class ContainerState(NamedTuple):
    """What `docker inspect` says about a container, reduced to what restart/exit detection needs."""

    container_id: str
    status: str
    restart_count: int
    started_at: str
    exit_code: Optional[int]
    error: str
    oom_killed: bool
    tty: bool

    @property
    def pending(self) -> bool:
        return self.status in _PENDING_STATUSES

    @property
    def running(self) -> bool:
        return self.status in _RUNNING_STATUSES

    def as_dict(self) -> Dict[str, Any]:
        return {
            "id": self.container_id,
            "status": self.status,
            "restart_count": self.restart_count,
            "started_at": self.started_at,
            "exit_code": self.exit_code,
            "error": self.error,
            "oom_killed": self.oom_killed,
        }


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def demultiplex_log_stream(data: bytes) -> str:
    """Decode a `/containers/<id>/logs` body of a container without a TTY.

    Docker frames each chunk with an 8-byte header: stream type (0 stdin, 1 stdout, 2 stderr), three zero bytes,
    then the payload size as a big-endian uint32. Anything that does not parse as frames is kept as raw text.
    """
    out = []
    offset = 0
    while offset + 8 <= len(data):
        stream_type = data[offset]
        if stream_type not in (0, 1, 2) or data[offset + 1 : offset + 4] != b"\x00\x00\x00":
            break
        (size,) = struct.unpack(">I", data[offset + 4 : offset + 8])
        out.append(data[offset + 8 : offset + 8 + size])
        offset += 8 + size
    out.append(data[offset:])
    return b"".join(out).decode("utf-8", errors="replace")


class DockerEngine:
    """Just the two read-only calls the readiness wait needs: inspect and logs."""

    def __init__(self, socket_path: str = DEFAULT_DOCKER_SOCKET, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _get(self, path: str, query: Optional[Dict[str, Any]] = None) -> Tuple[int, bytes]:
        target = path + ("?" + urlencode(query) if query else "")
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request("GET", target, headers={"Accept": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DockerEngineError(
                "cannot query the Docker engine at unix://%s: %s" % (self.socket_path, exc or type(exc).__name__)
            ) from exc
        finally:
            conn.close()

    @staticmethod
    def _engine_message(body: bytes) -> str:
        try:
            return str(json.loads(body.decode("utf-8"))["message"])
        except (ValueError, KeyError, TypeError):
            return body.decode("utf-8", errors="replace").strip()[:200]

    def inspect(self, name: str) -> ContainerState:
        status, body = self._get("/containers/%s/json" % quote(name, safe=""))
        if status == 404:
            raise ContainerNotFound("no container %r on the Docker engine: %s" % (name, self._engine_message(body)))
        if status != 200:
            raise DockerEngineError(
                "Docker engine answered %d to inspect %r: %s" % (status, name, self._engine_message(body))
            )
        try:
            info = json.loads(body.decode("utf-8"))
            state = info["State"]
            return ContainerState(
                container_id=str(info.get("Id", "")),
                status=str(state.get("Status", "")),
                restart_count=int(info.get("RestartCount", 0)),
                started_at=str(state.get("StartedAt", "")),
                exit_code=state.get("ExitCode"),
                error=str(state.get("Error", "") or ""),
                oom_killed=bool(state.get("OOMKilled", False)),
                tty=bool((info.get("Config") or {}).get("Tty", False)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DockerEngineError("unexpected inspect answer for container %r: %s" % (name, exc)) from exc

    def log_tail(self, name: str, lines: int, tty: bool = False) -> str:
        query = {"stdout": 1, "stderr": 1, "tail": max(int(lines), 0)}
        status, body = self._get("/containers/%s/logs" % quote(name, safe=""), query)
        if status != 200:
            raise DockerEngineError(
                "Docker engine answered %d to the logs of %r: %s" % (status, name, self._engine_message(body))
            )
        if tty:  # a TTY container's log stream is raw, without frame headers
            return body.decode("utf-8", errors="replace")
        return demultiplex_log_stream(body)

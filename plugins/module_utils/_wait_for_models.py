# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Wait until an OpenAI-compatible server (vLLM) serves a model; logic of the oci_gpu.vllm.wait_for_models module.

Every outcome is either a result dict or a WaitForModelsError subclass carrying a message and partial result;
nothing here knows about AnsibleModule. The API key never appears in a message or a result.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, make_context

from ._docker_engine import (
    DEFAULT_DOCKER_SOCKET,
    ContainerNotFound,
    ContainerState,
    DockerEngine,
    DockerEngineError,
)

# Poll schedule (the module's defaults). While the port refuses connections nothing listens yet (vLLM binds its port
# without listening until its engine is up): the kernel answers, the server does nothing, so polling fast costs it
# nothing and readiness is seen within REFUSED_INTERVAL. Once something answers (a front's 502, 503, an empty list,
# a timeout) the server is spent on, so the pace drops to INTERVAL, which also paces the container inspections.
DEFAULT_INTERVAL = 0.5
DEFAULT_REFUSED_INTERVAL = 0.2
MODELS_PATH = "/v1/models"
VERSION_PATH = "/version"
COMPLETIONS_PATH = "/v1/completions"
_BODY_SNIPPET = 300
_REDACTED = "********"
# What one request can raise besides an HTTP status: socket/URL errors, broken HTTP, ansible.module_utils.urls's own.
_NETWORK_ERRORS = (OSError, http.client.HTTPException, UrlsConnectionError, ValueError)


class WaitForModelsError(Exception):
    """Base of every failure; `result` holds what is known so far (attempts, elapsed, models, log_tail...)."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


class InvalidArgument(WaitForModelsError):
    """An option value can never work; raised before any request."""


class Unauthorized(WaitForModelsError):
    """401/403: the key is wrong or missing; retrying cannot help."""


class ContainerFailed(WaitForModelsError):
    """The watched container exited, restarted, vanished or cannot be watched."""


class DeepCheckFailed(WaitForModelsError):
    """The model is listed but a one-token completion does not work."""


class WrongModel(WaitForModelsError):
    """The server answers with a model list that lacks the model: vLLM's list is fixed once it answers."""


class WaitTimedOut(WaitForModelsError):
    """The model was not served before the timeout."""


class _Probe:
    """Outcome of one GET /v1/models."""

    def __init__(
        self,
        kind: str,
        detail: str,
        status: Optional[int] = None,
        models: Optional[List[str]] = None,
        refused: bool = False,
    ):
        self.kind = kind  # ready | wrong_model | http_error | unreachable | bad_response
        self.detail = detail
        self.status = status
        self.models = models or []
        self.refused = refused  # unreachable because nothing listens: the next poll may come soon


def validate_options(
    url: str,
    model: str,
    timeout: float,
    interval: float,
    request_timeout: float,
    refused_interval: float = DEFAULT_REFUSED_INTERVAL,
) -> str:
    """Return the normalised base URL or raise InvalidArgument naming the bad value."""
    if not model or not model.strip():
        raise InvalidArgument("model must be a non-empty model id, got %r" % (model,))
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument("url must be an http:// or https:// base URL such as http://127.0.0.1:8000, got %r" % url)
    if parts.query or parts.fragment:
        raise InvalidArgument("url must not carry a query or fragment, got %r" % url)
    base = url.rstrip("/")
    if base.endswith("/v1"):
        raise InvalidArgument("url must be the server's base URL without /v1 (/v1/models is added), got %r" % url)
    numbers = (
        ("timeout", timeout),
        ("interval", interval),
        ("refused_interval", refused_interval),
        ("request_timeout", request_timeout),
    )
    for name, value in numbers:
        if value is None or value <= 0:
            raise InvalidArgument("%s must be a number of seconds greater than 0, got %r" % (name, value))
    return base


class ModelWaiter:
    """Polls GET <url>/v1/models and, optionally, watches a Docker container for exit or restart."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: Optional[str] = None,
        timeout: float = 600,
        interval: float = DEFAULT_INTERVAL,
        request_timeout: float = 10,
        refused_interval: float = DEFAULT_REFUSED_INTERVAL,
        container: Optional[str] = None,
        deep_check: bool = False,
        validate_certs: bool = True,
        ca_path: Optional[str] = None,
        docker_socket: str = DEFAULT_DOCKER_SOCKET,
        log_lines: int = 40,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = validate_options(url, model, timeout, interval, request_timeout, refused_interval)
        if log_lines < 0:
            raise InvalidArgument("log_lines must be 0 or more, got %r" % (log_lines,))
        self.model = model
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.interval = float(interval)
        self.refused_interval = min(float(refused_interval), self.interval)
        self.request_timeout = float(request_timeout)
        self.container = container or None
        self.deep_check = deep_check
        self.validate_certs = validate_certs
        self.ca_path = ca_path or None
        self._ssl_context = self._make_ssl_context()
        self.docker = DockerEngine(docker_socket) if self.container else None
        self.log_lines = log_lines
        self._clock = clock
        self._sleep = sleep
        self._start = 0.0
        self._attempts = 0
        self._baseline: Optional[ContainerState] = None
        self._next_inspection = 0.0

    # -- helpers -------------------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        if self.api_key and text:
            return text.replace(self.api_key, _REDACTED)
        return text

    def _elapsed(self) -> float:
        return round(self._clock() - self._start, 3)

    def _partial(self, **extra: Any) -> Dict[str, Any]:
        result: Dict[str, Any] = {"url": self.base_url, "elapsed": self._elapsed(), "attempts": self._attempts}
        result.update(extra)
        return result

    def _snippet(self, body: bytes) -> str:
        text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
        if len(text) > _BODY_SNIPPET:
            text = text[:_BODY_SNIPPET] + "..."
        return self._redact(text)

    def _make_ssl_context(self) -> ssl.SSLContext:
        """One TLS context for every request: building one loads the CA store (~20 ms of CPU), per poll it would
        cost more than the poll itself."""
        try:
            return make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
        except (OSError, ssl.SSLError) as exc:
            if self.ca_path is None:
                raise WaitForModelsError("cannot load the system's CA certificates: %s" % exc) from exc
            raise InvalidArgument(
                "ca_path must be a readable PEM file of CA certificates, got %r (%s)" % (self.ca_path, exc)
            ) from exc

    def _request(self, method: str, path: str, timeout: float, payload: Optional[dict] = None) -> Tuple[int, bytes]:
        """One fresh HTTP request. HTTP errors come back as (status, body); network errors raise OSError etc."""
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = Request().open(
                method,
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=timeout,
                validate_certs=self.validate_certs,
                ca_path=self.ca_path,
                follow_redirects="safe",
                context=self._ssl_context,
            )
            return response.getcode(), response.read()
        except HTTPError as exc:
            try:
                body = exc.read()
            except (OSError, http.client.HTTPException):
                body = b""
            return exc.code, body or b""

    @staticmethod
    def _refused(exc: BaseException) -> bool:
        reason = getattr(exc, "reason", None) if isinstance(exc, URLError) else exc
        return isinstance(reason, ConnectionRefusedError)

    def _describe_network_error(self, exc: BaseException, waited: float) -> str:
        reason = getattr(exc, "reason", None) if isinstance(exc, URLError) else exc
        if self._refused(exc):
            return "connection refused"
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "no answer within %.3gs (request_timeout %gs)" % (waited, self.request_timeout)
        return self._redact("%s: %s" % (type(reason).__name__, reason))

    def _request_timeout_now(self) -> float:
        remaining = self.timeout - (self._clock() - self._start)
        return max(min(self.request_timeout, remaining), 0.1)

    # -- container watch -----------------------------------------------------------------------------------------

    def _log_tail(self, state: Optional[ContainerState] = None) -> List[str]:
        """Last log lines of the watched container (redacted), or [] when no container is watched."""
        if self.docker is None or self.container is None or not self.log_lines:
            return []
        known = state or self._baseline
        try:
            text = self.docker.log_tail(self.container, self.log_lines, tty=bool(known and known.tty))
        except DockerEngineError as exc:
            return ["(could not read the container logs: %s)" % exc]
        return [self._redact(line) for line in text.splitlines()]

    def _container_failed(self, msg: str, state: Optional[ContainerState]) -> ContainerFailed:
        tail = self._log_tail(state)
        if tail:
            msg += "; last log lines: " + " | ".join(tail[-5:])
        return ContainerFailed(
            msg,
            **self._partial(container_state=state.as_dict() if state else None, log_tail=tail),
        )

    def _watch_container(self) -> None:
        """Inspect the container at the first poll and then once per interval, however fast the polls come."""
        if self.docker is None:
            return
        now = self._clock()
        if now < self._next_inspection:
            return
        # A millisecond of slack, so that polls every refused_interval still inspect at every interval.
        self._next_inspection = now + self.interval - 0.001
        self._check_container()

    def _check_container(self) -> None:
        if self.docker is None or self.container is None:
            return
        try:
            state = self.docker.inspect(self.container)
        except ContainerNotFound as exc:
            msg = "container %r disappeared or was never created (%s)" % (self.container, exc)
            raise self._container_failed(msg, None) from exc
        except DockerEngineError as exc:
            raise ContainerFailed(
                "cannot watch container %r: %s" % (self.container, exc), **self._partial(log_tail=[])
            ) from exc
        name = self.container
        if not (state.running or state.pending):
            detail = "exit code %s" % state.exit_code
            if state.oom_killed:
                detail += ", killed by the OOM killer"
            if state.error:
                detail += ", error: %s" % state.error
            # "restarting": it exited and Docker's restart policy is bringing it back; say both.
            status = "exited and is restarting" if state.status == "restarting" else "is %s" % state.status
            raise self._container_failed("container %r %s (%s)" % (name, status, detail), state)
        baseline = self._baseline
        if baseline is None:
            self._baseline = state
            return
        if state.container_id != baseline.container_id:
            raise self._container_failed("container %r was replaced by another container while waiting" % name, state)
        if state.restart_count != baseline.restart_count or state.started_at != baseline.started_at:
            msg = "container %r restarted while waiting (restart count %d -> %d, started at %s -> %s; exit code %s)" % (
                name,
                baseline.restart_count,
                state.restart_count,
                baseline.started_at,
                state.started_at,
                state.exit_code,
            )
            raise self._container_failed(msg, state)

    # -- probes --------------------------------------------------------------------------------------------------

    def _unauthorized(self, status: int, what: str) -> Unauthorized:
        if self.api_key:
            msg = "%s answered %d: the server rejected the API key (wrong key?); retrying cannot help" % (what, status)
        else:
            msg = "%s answered %d: the server requires an API key and none was given (set api_key)" % (what, status)
        return Unauthorized(msg, **self._partial(status=status))

    def _probe_models(self) -> _Probe:
        try:
            waited = self._request_timeout_now()
            status, body = self._request("GET", MODELS_PATH, waited)
        except _NETWORK_ERRORS as exc:
            if isinstance(getattr(exc, "reason", exc), ssl.SSLCertVerificationError):
                raise WaitForModelsError(
                    "TLS certificate of %s not trusted: %s (set validate_certs: false only for a test endpoint)"
                    % (self.base_url, self._redact(str(exc))),
                    **self._partial(),
                ) from exc
            return _Probe("unreachable", self._describe_network_error(exc, waited), refused=self._refused(exc))
        if status in (401, 403):
            raise self._unauthorized(status, "GET %s%s" % (self.base_url, MODELS_PATH))
        if status != 200:
            return _Probe("http_error", "last status %d: %s" % (status, self._snippet(body)), status=status)
        try:
            listing = json.loads(body.decode("utf-8"))
            models = [str(entry["id"]) for entry in listing["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            detail = "not an OpenAI model list (%s): %s" % (exc, self._snippet(body))
            return _Probe("bad_response", detail, status=status)
        if self.model in models:
            return _Probe("ready", "ready", status=status, models=models)
        served = ", ".join(repr(m) for m in models) if models else "no model"
        detail = "the server serves %s, not %r" % (served, self.model)
        return _Probe("wrong_model", detail, status=status, models=models)

    def _server_version(self) -> Optional[str]:
        try:
            status, body = self._request("GET", VERSION_PATH, self._request_timeout_now())
            if status == 200:
                return str(json.loads(body.decode("utf-8"))["version"])
        except (*_NETWORK_ERRORS, KeyError, TypeError):  # informative only: its absence must not fail the wait
            pass
        return None

    def _run_deep_check(self, models: List[str]) -> str:
        payload = {"model": self.model, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
        what = "deep check POST %s%s" % (self.base_url, COMPLETIONS_PATH)
        try:
            status, body = self._request("POST", COMPLETIONS_PATH, self.request_timeout, payload)
        except _NETWORK_ERRORS as exc:
            msg = "%s got no answer: %s" % (what, self._describe_network_error(exc, self.request_timeout))
            raise self._deep_check_failed(msg, models) from exc
        if status in (401, 403):
            raise self._unauthorized(status, what)
        if status != 200:
            msg = "%s answered %d although the model is listed (engine broken?): %s" % (
                what,
                status,
                self._snippet(body),
            )
            raise self._deep_check_failed(msg, models)
        try:
            return str(json.loads(body.decode("utf-8"))["choices"][0]["text"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._deep_check_failed(
                "%s answered 200 without a completion (%s): %s" % (what, exc, self._snippet(body)), models
            ) from exc

    def _deep_check_failed(self, msg: str, models: List[str]) -> DeepCheckFailed:
        return DeepCheckFailed(msg, **self._partial(models=models, log_tail=self._log_tail()))

    # -- main loop -----------------------------------------------------------------------------------------------

    def run(self) -> Dict[str, Any]:
        self._start = self._clock()
        self._attempts = 0
        self._baseline = None
        self._next_inspection = self._start
        last: Optional[_Probe] = None
        answered: Optional[_Probe] = None  # last probe the server answered, for the timeout message
        while True:
            self._attempts += 1
            self._watch_container()
            last = self._probe_models()
            if last.kind == "ready":
                break
            if last.kind == "wrong_model" and last.models:
                # vLLM answers /v1/models only once its engine is up, with the names it will serve: waiting cannot
                # make another model appear (a wrong served name, or another server on the port). An empty list
                # (a server still loading) is waited for.
                raise self._wrong_model(last)
            if last.kind != "unreachable":
                answered = last
            remaining = self.timeout - (self._clock() - self._start)
            if remaining <= 0:
                raise self._timed_out(last, answered)
            self._sleep(min(self.refused_interval if last.refused else self.interval, remaining))
        result = self._partial(models=last.models, server_version=self._server_version())
        if self.deep_check:
            self._check_container()
            result["deep_check"] = {"completion": self._redact(self._run_deep_check(last.models))}
        result["elapsed"] = self._elapsed()
        return result

    def _wrong_model(self, probe: _Probe) -> WrongModel:
        msg = "%s%s answers but %s" % (self.base_url, MODELS_PATH, probe.detail)
        extra: Dict[str, Any] = {"models": probe.models, "last_status": probe.status}
        if self.container:
            extra["log_tail"] = self._log_tail()
        return WrongModel(msg, **self._partial(**extra))

    def _timed_out(self, last: _Probe, answered: Optional[_Probe]) -> WaitTimedOut:
        detail = last.detail
        if answered is not None and answered is not last:
            detail += "; before that: " + answered.detail
        msg = "timed out after %gs (%d attempts) waiting for model %r at %s%s: %s" % (
            self.timeout,
            self._attempts,
            self.model,
            self.base_url,
            MODELS_PATH,
            detail,
        )
        known = answered or last
        extra: Dict[str, Any] = {"models": known.models, "last_status": known.status}
        if self.container:
            extra["log_tail"] = self._log_tail()
        return WaitTimedOut(msg, **self._partial(**extra))


def wait_for_models(**options: Any) -> Dict[str, Any]:
    """Convenience entry point: ModelWaiter(**options).run()."""
    return ModelWaiter(**options).run()

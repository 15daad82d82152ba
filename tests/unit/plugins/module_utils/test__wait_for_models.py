# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""wait_for_models logic against real local servers: HTTP on 127.0.0.1 and a fake Docker engine on a unix socket."""

from __future__ import annotations

import json
import threading
import time

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils._wait_for_models import (
    ContainerFailed,
    DeepCheckFailed,
    InvalidArgument,
    Unauthorized,
    WaitTimedOut,
    WrongModel,
    wait_for_models,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.wait_for_models_fakes import (
    FakeDockerEngine,
    FakeOpenAIServer,
    Reply,
    completion_body,
    free_port,
    models_body,
)

MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
KEY = "sk-test-0123456789abcdef"


def serving(*ids, version="0.32.0-test"):
    """Routes of a healthy server listing `ids`, with the key required on /v1/*."""

    def models(app):
        if not app.last_authorized():
            return Reply(401, {"error": "Unauthorized"})
        return Reply(200, models_body(*ids))

    return {
        ("GET", "/v1/models"): models,
        ("GET", "/version"): lambda app: Reply(200, {"version": version}),
        ("POST", "/v1/completions"): lambda app: Reply(200, completion_body()),
    }


def fast(url, **extra):
    options = {"url": url, "model": MODEL, "api_key": KEY, "timeout": 10, "interval": 0.05, "request_timeout": 2}
    options.update(extra)
    return options


def test_ready_at_first_poll_returns_models_version_and_sends_bearer_key():
    with FakeOpenAIServer(serving(MODEL, "other"), api_key=KEY) as server:
        result = wait_for_models(**fast(server.url))
    assert result["models"] == [MODEL, "other"]
    assert result["attempts"] == 1
    assert result["server_version"] == "0.32.0-test"
    assert "log_tail" not in result and "deep_check" not in result
    assert server.requests[0]["headers"]["Authorization"] == "Bearer " + KEY
    assert KEY not in json.dumps(result)


def test_ready_after_a_delay_returns_within_an_interval_of_readiness():
    ready_after = 0.6

    def models(app):
        now = time.monotonic() - app.started_at
        return Reply(200, models_body(MODEL) if now >= ready_after else models_body())

    with FakeOpenAIServer({("GET", "/v1/models"): models}) as server:
        start = time.monotonic()
        result = wait_for_models(**fast(server.url, interval=0.1))
        took = time.monotonic() - start
    assert result["attempts"] > 3
    assert ready_after - 0.05 <= took < ready_after + 2.0  # loose upper bound: shared 2-core CI hosts
    assert result["server_version"] is None  # no /version route: 404 is not an error


def test_connection_refused_keeps_waiting_until_the_server_listens():
    port = free_port()
    holder = {}

    def start_late():
        holder["server"] = FakeOpenAIServer(serving(MODEL), port=port, api_key=KEY).start()

    timer = threading.Timer(0.5, start_late)
    timer.start()
    try:
        result = wait_for_models(**fast("http://127.0.0.1:%d/" % port, interval=0.1))
    finally:
        timer.join()
        holder["server"].stop()
    assert result["attempts"] >= 3
    assert result["url"] == "http://127.0.0.1:%d" % port


def test_connection_refused_until_timeout_says_so():
    with pytest.raises(WaitTimedOut) as err:
        wait_for_models(**fast("http://127.0.0.1:%d" % free_port(), timeout=1))
    assert "connection refused" in err.value.msg
    assert err.value.result["last_status"] is None
    assert err.value.result["attempts"] >= 2


def test_500_then_ready():
    calls = []

    def models(app):
        calls.append(1)
        if len(calls) <= 2:
            return Reply(500, {"object": "error", "message": "engine starting"})
        return Reply(200, models_body(MODEL))

    with FakeOpenAIServer({("GET", "/v1/models"): models}) as server:
        result = wait_for_models(**fast(server.url))
    assert result["attempts"] == 3
    assert result["models"] == [MODEL]


def test_5xx_until_timeout_reports_the_last_status_and_body():
    routes = {("GET", "/v1/models"): lambda app: Reply(503, {"message": "model loading 42%"})}
    with FakeOpenAIServer(routes) as server, pytest.raises(WaitTimedOut) as err:
        wait_for_models(**fast(server.url, timeout=1))
    assert "last status 503" in err.value.msg and "model loading 42%" in err.value.msg
    assert err.value.result["last_status"] == 503


@pytest.mark.parametrize("status", [401, 403])
def test_wrong_key_fails_at_once(status):
    routes = {("GET", "/v1/models"): lambda app: Reply(status, {"error": "Unauthorized"})}
    with FakeOpenAIServer(routes) as server, pytest.raises(Unauthorized) as err:
        wait_for_models(**fast(server.url, timeout=30, interval=1))
    assert err.value.result["attempts"] == 1
    assert err.value.result["elapsed"] < 5
    assert "rejected the API key" in err.value.msg and str(status) in err.value.msg
    assert KEY not in err.value.msg and KEY not in json.dumps(err.value.result)


def test_missing_key_says_a_key_is_required():
    with FakeOpenAIServer(serving(MODEL), api_key=KEY) as server, pytest.raises(Unauthorized) as err:
        wait_for_models(**fast(server.url, api_key=None))
    assert "requires an API key and none was given" in err.value.msg
    assert "Authorization" not in server.requests[0]["headers"]


def test_wrong_model_fails_at_once_naming_what_is_served():
    with FakeOpenAIServer(serving("facebook/opt-125m", "tiny"), api_key=KEY) as server, pytest.raises(
        WrongModel
    ) as err:
        wait_for_models(**fast(server.url, timeout=30))
    assert "'facebook/opt-125m', 'tiny'" in err.value.msg and repr(MODEL) in err.value.msg
    assert err.value.result["models"] == ["facebook/opt-125m", "tiny"]
    assert server.count("/v1/models") == 1  # no waiting for a list that cannot change


def test_not_yet_answering_then_wrong_model_still_fails_once_it_answers():
    calls = []

    def models(app):
        calls.append(1)
        return Reply(503, b"loading") if len(calls) <= 2 else Reply(200, models_body("other"))

    with FakeOpenAIServer({("GET", "/v1/models"): models}) as server, pytest.raises(WrongModel):
        wait_for_models(**fast(server.url, timeout=30))
    assert server.count("/v1/models") == 3


def test_slow_responses_are_cut_by_request_timeout_and_retried():
    calls = []

    def models(app):
        calls.append(1)
        return Reply(200, models_body(MODEL), delay=3 if len(calls) <= 2 else 0)

    with FakeOpenAIServer({("GET", "/v1/models"): models}) as server:
        start = time.monotonic()
        result = wait_for_models(**fast(server.url, request_timeout=0.5))
        took = time.monotonic() - start
    assert result["attempts"] >= 3
    assert took < 5  # the slow attempts were cut at 0.5 s instead of waiting 2 x 3 s


def test_overall_timeout_bounds_a_hanging_request():
    routes = {("GET", "/v1/models"): lambda app: Reply(200, models_body(MODEL), delay=6)}
    with FakeOpenAIServer(routes) as server, pytest.raises(WaitTimedOut) as err:
        start = time.monotonic()
        wait_for_models(**fast(server.url, timeout=1, request_timeout=30))
    assert time.monotonic() - start < 4.5  # bounded by timeout=1, not by the 6 s answer
    assert "no answer within" in err.value.msg and "(request_timeout 30s)" in err.value.msg


def test_not_a_model_list_keeps_waiting_and_says_what_came_back():
    routes = {("GET", "/v1/models"): lambda app: Reply(200, b"<html>proxy login</html>")}
    with FakeOpenAIServer(routes) as server, pytest.raises(WaitTimedOut) as err:
        wait_for_models(**fast(server.url, timeout=1))
    assert "not an OpenAI model list" in err.value.msg and "proxy login" in err.value.msg


def test_deep_check_sends_one_token_completion():
    with FakeOpenAIServer(serving(MODEL), api_key=KEY) as server:
        result = wait_for_models(**fast(server.url, deep_check=True))
    posts = [r for r in server.requests if r["method"] == "POST"]
    assert len(posts) == 1
    sent = json.loads(posts[0]["body"])
    assert sent["model"] == MODEL and sent["max_tokens"] == 1
    assert posts[0]["headers"]["Authorization"] == "Bearer " + KEY
    assert result["deep_check"] == {"completion": " the"}


def test_deep_check_500_fails_naming_the_body():
    routes = serving(MODEL)
    routes[("POST", "/v1/completions")] = lambda app: Reply(
        500, {"object": "error", "message": "CPU attention: head size 16 not supported"}
    )
    with FakeOpenAIServer(routes, api_key=KEY) as server, pytest.raises(DeepCheckFailed) as err:
        wait_for_models(**fast(server.url, deep_check=True))
    assert "answered 500" in err.value.msg and "head size 16 not supported" in err.value.msg
    assert err.value.result["models"] == [MODEL]


def test_without_deep_check_a_dead_engine_passes():
    routes = serving(MODEL)
    routes[("POST", "/v1/completions")] = lambda app: Reply(500, {"message": "dead"})
    with FakeOpenAIServer(routes, api_key=KEY) as server:
        wait_for_models(**fast(server.url))
    assert server.count("/v1/completions") == 0


def test_key_echoed_by_the_server_is_redacted():
    routes = {("GET", "/v1/models"): lambda app: Reply(502, {"message": "upstream got key %s" % KEY})}
    with FakeOpenAIServer(routes) as server, pytest.raises(WaitTimedOut) as err:
        wait_for_models(**fast(server.url, timeout=1))
    assert KEY not in err.value.msg and "********" in err.value.msg


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"url": "127.0.0.1:8000"}, "127.0.0.1:8000"),
        ({"url": "ftp://h:8000"}, "ftp://h:8000"),
        ({"url": "http://h:8000/v1"}, "without /v1"),
        ({"model": " "}, "model"),
        ({"timeout": 0}, "timeout"),
        ({"interval": -1}, "interval"),
        ({"refused_interval": 0}, "refused_interval"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"log_lines": -1}, "log_lines"),
    ],
)
def test_bad_options_fail_before_any_request(override, named):
    with FakeOpenAIServer(serving(MODEL), api_key=KEY) as server:
        options = fast(server.url)
        options.update(override)
        with pytest.raises(InvalidArgument) as err:
            wait_for_models(**options)
    assert named in err.value.msg
    assert server.requests == []


# -- container watch ------------------------------------------------------------------------------------------------


def test_a_container_docker_is_restarting_is_reported_as_exited():
    # unless-stopped: after the exit Docker shows "restarting" until the next start; the message says both.
    with FakeDockerEngine() as engine:
        vllm = engine.add("vllm")
        vllm.status, vllm.exit_code = "restarting", 2
        with pytest.raises(ContainerFailed) as err:
            wait_for_models(
                **fast("http://127.0.0.1:%d" % free_port(), timeout=20, interval=0.1),
                container="vllm",
                docker_socket=engine.socket_path,
            )
    assert "'vllm' exited and is restarting (exit code 2)" in err.value.msg


def test_container_exit_fails_fast_with_demultiplexed_log_tail():
    with FakeDockerEngine() as engine:
        vllm = engine.add("vllm")
        vllm.log("INFO starting vLLM API server", stream=1)
        vllm.log("ValueError: head_dim 16 is not supported (api_key=%s)" % KEY, stream=2)
        threading.Timer(0.4, vllm.exit, kwargs={"code": 1}).start()
        start = time.monotonic()
        with pytest.raises(ContainerFailed) as err:
            wait_for_models(
                **fast("http://127.0.0.1:%d" % free_port(), timeout=20, interval=0.1),
                container="vllm",
                docker_socket=engine.socket_path,
            )
        took = time.monotonic() - start
    assert took < 5  # seconds, not the 20 s timeout
    result = err.value.result
    assert "'vllm' is exited (exit code 1)" in err.value.msg
    assert result["container_state"]["exit_code"] == 1
    assert result["log_tail"][0] == "INFO starting vLLM API server"
    assert result["log_tail"][1].startswith("ValueError: head_dim 16")
    assert KEY not in json.dumps(result) and KEY not in err.value.msg
    assert all("\x00" not in line and "\x01" not in line for line in result["log_tail"])


def test_container_restart_is_detected_even_when_it_is_running_again():
    with FakeDockerEngine() as engine:
        vllm = engine.add("vllm")
        vllm.log("killed")
        threading.Timer(0.3, vllm.restart).start()
        with pytest.raises(ContainerFailed) as err:
            wait_for_models(
                **fast("http://127.0.0.1:%d" % free_port(), interval=0.1),
                container="vllm",
                docker_socket=engine.socket_path,
            )
    assert "restarted while waiting (restart count 0 -> 1" in err.value.msg
    assert err.value.result["log_tail"] == ["killed"]


def test_container_already_exited_fails_at_first_attempt():
    with FakeDockerEngine() as engine:
        engine.add("vllm").exit(code=2)
        with pytest.raises(ContainerFailed) as err:
            wait_for_models(
                **fast("http://127.0.0.1:%d" % free_port()), container="vllm", docker_socket=engine.socket_path
            )
    assert err.value.result["attempts"] == 1 and "exit code 2" in err.value.msg


def test_tty_container_logs_are_read_raw():
    with FakeDockerEngine() as engine:
        vllm = engine.add("vllm", tty=True)
        for i in range(60):
            vllm.log("line %d" % i)
        vllm.exit()
        with pytest.raises(ContainerFailed) as err:
            wait_for_models(
                **fast("http://127.0.0.1:%d" % free_port()),
                container="vllm",
                docker_socket=engine.socket_path,
                log_lines=5,
            )
    assert err.value.result["log_tail"] == ["line 55", "line 56", "line 57", "line 58", "line 59"]


def test_missing_container_and_missing_socket_are_clear():
    with FakeDockerEngine() as engine:
        with pytest.raises(ContainerFailed) as err:
            wait_for_models(**fast("http://127.0.0.1:1"), container="nope", docker_socket=engine.socket_path)
        assert "'nope'" in err.value.msg and "No such container: nope" in err.value.msg
    with pytest.raises(ContainerFailed) as err:
        wait_for_models(**fast("http://127.0.0.1:1"), container="vllm", docker_socket="/nonexistent/docker.sock")
    assert "cannot watch container 'vllm'" in err.value.msg and "/nonexistent/docker.sock" in err.value.msg


def test_healthy_container_and_server_succeed_and_failures_carry_the_log_tail():
    with FakeDockerEngine() as engine, FakeOpenAIServer(serving(MODEL), api_key=KEY) as server:
        engine.add("vllm").log("Uvicorn running")
        result = wait_for_models(**fast(server.url), container="vllm", docker_socket=engine.socket_path)
        assert result["models"] == [MODEL] and "log_tail" not in result
        assert engine.requests.count("/containers/vllm/json") == 1
        with pytest.raises(WrongModel) as wrong:
            wait_for_models(
                **fast(server.url, model="absent", timeout=1), container="vllm", docker_socket=engine.socket_path
            )
        assert wrong.value.result["log_tail"] == ["Uvicorn running"]
    with FakeDockerEngine() as engine, FakeOpenAIServer({}) as server:
        engine.add("vllm").log("Loading weights")
        with pytest.raises(WaitTimedOut) as err:
            wait_for_models(**fast(server.url, timeout=1), container="vllm", docker_socket=engine.socket_path)
        assert err.value.result["log_tail"] == ["Loading weights"]

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""wait_for_models' poll schedule on an injected clock: how soon readiness is seen and how often the server is asked.

The network is a script of what the server does at each moment (refuse, answer, hang); no test reads wall time.
"""

from __future__ import annotations

import errno
import json
import statistics
from urllib.error import URLError

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils import _wait_for_models
from ansible_collections.oci_gpu.vllm.plugins.module_utils._wait_for_models import (
    ContainerFailed,
    InvalidArgument,
    ModelWaiter,
    WaitTimedOut,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.wait_for_models_fakes import (
    FakeDockerEngine,
    free_port,
    models_body,
)

MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
REFUSED = "refused"
HANGS = "hangs"  # accepts the connection, never answers (a loaded server)
UNROUTABLE = "unroutable"
READY = (200, models_body(MODEL))
BAD_GATEWAY = (502, b"<html>502 Bad Gateway</html>")  # nginx in front of a vLLM that does not listen yet


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedServer:
    """What the server does at each moment: `script(elapsed) -> REFUSED | HANGS | UNROUTABLE | (status, body)`.

    Records every GET /v1/models as (elapsed, outcome); an answer costs 2 ms of the clock, a hang the whole timeout.
    """

    def __init__(self, clock, script, on_request=None):
        self.clock = clock
        self.start = clock.now
        self.script = script
        self.on_request = on_request
        self.polls = []

    def elapsed(self):
        return self.clock.now - self.start

    def request(self, method, path, timeout, payload=None):
        if self.on_request:
            self.on_request(self.elapsed())
        if path == "/version":
            return 404, b""
        outcome = self.script(self.elapsed())
        self.polls.append((self.elapsed(), outcome))
        if outcome == REFUSED:
            raise URLError(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
        if outcome == UNROUTABLE:
            raise URLError(OSError(errno.EHOSTUNREACH, "No route to host"))
        if outcome == HANGS:
            self.clock.now += timeout
            raise TimeoutError("timed out")
        self.clock.now += 0.002
        status, body = outcome
        return status, body if isinstance(body, bytes) else json.dumps(body).encode()

    def answered_polls(self, before):
        return [t for t, outcome in self.polls if outcome not in (REFUSED, UNROUTABLE) and t < before]


def waiter(script, on_request=None, **options):
    """A ModelWaiter at the module's defaults (unless `options` say otherwise) on a fake clock and network."""
    clock = FakeClock()
    settings = {"url": "http://127.0.0.1:8000", "model": MODEL, "timeout": 600}
    settings.update(options)
    subject = ModelWaiter(clock=clock, sleep=clock.sleep, **settings)
    server = ScriptedServer(clock, script, on_request)
    subject._request = server.request  # pylint: disable=protected-access
    return subject, server, clock


def phases(listens_at, ready_at, while_not_ready=BAD_GATEWAY):
    return lambda t: REFUSED if t < listens_at else (while_not_ready if t < ready_at else READY)


def sleeps_after(server, clock, outcome):
    """The sleep requested after each poll that saw `outcome` (the last poll, ready, has none)."""
    return [pause for (_t, seen), pause in zip(server.polls, clock.sleeps) if seen == outcome]


def test_defaults_are_the_documented_fast_schedule():
    assert _wait_for_models.DEFAULT_REFUSED_INTERVAL == 0.2
    assert _wait_for_models.DEFAULT_INTERVAL == 0.5
    subject, _server, _clock = waiter(phases(0, 0))
    assert (subject.refused_interval, subject.interval) == (0.2, 0.5)


def test_fast_while_refused_then_one_poll_per_interval_while_answered_but_not_ready():
    subject, server, clock = waiter(phases(listens_at=1.0, ready_at=3.0))
    result = subject.run()
    refused = sleeps_after(server, clock, REFUSED)
    answered = sleeps_after(server, clock, BAD_GATEWAY)
    assert refused and set(refused) == {0.2}
    assert answered and set(answered) == {0.5}
    assert len(answered) == 4  # 2 s of 502s: one poll per 0.5 s, not more
    assert result["models"] == [MODEL] and result["attempts"] == len(server.polls)
    assert 3.0 <= server.elapsed() <= 3.0 + 0.5 + 0.01


def test_readiness_seen_within_half_a_second_median_of_the_server_listening():
    # vLLM binds its port but listens only once the engine is up: refused, then the model at once.
    delays = []
    for trial in range(40):
        listens_at = 0.013 + trial * 0.0987
        subject, server, _clock = waiter(phases(listens_at=listens_at, ready_at=listens_at))
        subject.run()
        delays.append(server.elapsed() - listens_at)
        assert server.answered_polls(before=listens_at) == []  # nothing reached the server before it answered
    assert statistics.median(delays) <= 0.5
    assert max(delays) <= 0.2 + 0.01  # one refused_interval plus the answer


def test_a_server_answering_not_ready_gets_at_most_two_polls_a_second():
    subject, server, _clock = waiter(phases(listens_at=0, ready_at=60.0, while_not_ready=(503, b"loading")))
    subject.run()
    not_ready = server.answered_polls(before=60.0)
    assert 60 / 0.5 - 1 <= len(not_ready) <= 60 / 0.5 + 1
    assert len(not_ready) / 60.0 <= 2.05
    assert server.elapsed() - 60.0 <= 0.5 + 0.01


@pytest.mark.parametrize(
    "not_ready",
    [HANGS, UNROUTABLE, BAD_GATEWAY, (503, b"loading"), (200, models_body()), (200, b"<html>login</html>")],
    ids=["hangs", "unroutable", "502", "503", "empty-list", "not-a-list"],
)
def test_everything_but_a_refused_connection_is_polled_at_interval(not_ready):
    subject, server, clock = waiter(phases(listens_at=0, ready_at=5.0, while_not_ready=not_ready), request_timeout=1)
    subject.run()
    assert set(sleeps_after(server, clock, not_ready)) == {0.5}


@pytest.mark.parametrize(
    ("options", "expected"),
    [({"interval": 0.1}, 0.1), ({"interval": 2, "refused_interval": 1}, 1), ({"interval": 2}, 0.2)],
)
def test_refused_interval_is_capped_by_interval(options, expected):
    subject, server, clock = waiter(phases(listens_at=3.0, ready_at=3.0), **options)
    subject.run()
    assert set(sleeps_after(server, clock, REFUSED)) == {expected}


def test_last_sleep_stops_at_the_timeout():
    subject, _server, clock = waiter(lambda t: REFUSED, timeout=1.1)
    with pytest.raises(WaitTimedOut) as err:
        subject.run()
    assert clock.sleeps[:5] == [0.2] * 5 and clock.sleeps[5] == pytest.approx(0.1)
    assert sum(clock.sleeps) == pytest.approx(1.1)
    assert "(7 attempts)" in err.value.msg and "connection refused" in err.value.msg


def test_container_inspected_once_per_interval_while_polls_come_faster_and_exit_still_caught():
    with FakeDockerEngine() as engine:
        vllm = engine.add("vllm")

        def exit_at(elapsed):
            if elapsed >= 3.0 and vllm.inspect_json()["State"]["Running"]:
                vllm.exit(code=1)

        subject, server, _clock = waiter(
            lambda t: REFUSED, on_request=exit_at, container="vllm", docker_socket=engine.socket_path
        )
        with pytest.raises(ContainerFailed) as err:
            subject.run()
        inspections = engine.requests.count("/containers/vllm/json")
    assert "'vllm' is exited (exit code 1)" in err.value.msg
    assert server.elapsed() <= 3.0 + 0.5 + 0.2  # within one interval (and a refused poll) of the exit
    assert len(server.polls) >= 15  # the polls came every 0.2 s...
    assert 3.0 / 0.7 <= inspections <= 3.7 / 0.5 + 1  # ...the inspections about every 0.5 s


def test_one_tls_context_serves_every_poll(monkeypatch):
    # Building a context loads the CA store (~20 ms of CPU): per poll, fast polling would cost a core's tenth.
    made = []
    real = _wait_for_models.make_context

    def counting(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(_wait_for_models, "make_context", counting)
    clock = FakeClock()
    subject = ModelWaiter(
        url="https://127.0.0.1:%d" % free_port(), model=MODEL, timeout=2, clock=clock, sleep=clock.sleep
    )
    with pytest.raises(WaitTimedOut) as err:
        subject.run()  # real requests to a port where nothing listens
    assert err.value.result["attempts"] == 11 and "connection refused" in err.value.msg
    assert made == [{"cafile": None, "validate_certs": True}]


def test_unreadable_ca_path_fails_before_any_request(tmp_path):
    missing = str(tmp_path / "missing-ca.pem")
    with pytest.raises(InvalidArgument) as err:
        waiter(phases(0, 0), url="https://127.0.0.1:8443", ca_path=missing)
    assert missing in err.value.msg and "ca_path" in err.value.msg

"""Exit codes and reports from synthetic ansible-runner results and events (no ansible run)."""

from __future__ import annotations

import io
import json

import pytest

from oci_vllm import cli
from oci_vllm.errors import ExitCode
from oci_vllm.progress import Progress
from oci_vllm.runner import RunResult, _Collector, classify

OK_STATS = {"ok": {"h1": 10, "h2": 10}, "changed": {"h1": 2}, "failures": {}, "dark": {}, "skipped": {"h2": 1}}


@pytest.mark.parametrize(
    ("status", "rc", "stats", "expected"),
    [
        ("successful", 0, OK_STATS, ExitCode.OK),
        ("failed", 2, {**OK_STATS, "failures": {"h2": 1}}, ExitCode.HOSTS_FAILED),
        ("failed", 4, {**OK_STATS, "dark": {"h2": 1}}, ExitCode.UNREACHABLE),
        ("failed", 2, {**OK_STATS, "dark": {"h1": 1}, "failures": {"h2": 1}}, ExitCode.UNREACHABLE),
        ("failed", 1, None, ExitCode.ERROR),  # playbook or inventory error: no play ran
        ("successful", 0, None, ExitCode.OK),
        ("timeout", 254, OK_STATS, ExitCode.ERROR),
        ("canceled", 0, OK_STATS, ExitCode.ERROR),
    ],
)
def test_classify(status, rc, stats, expected):
    assert classify(status, rc, stats) == expected


def test_classify_bad_input_from_the_validation_play():
    failed = {**OK_STATS, "failures": {"h1": 1, "h2": 1}}
    assert classify("failed", 2, failed, invalid=True) == ExitCode.BAD_INPUT
    # An unreachable host still wins: it was not validated at all.
    assert classify("failed", 4, {**failed, "dark": {"h3": 1}}, invalid=True) == ExitCode.UNREACHABLE


def test_deploy_prints_every_refused_value_and_exits_4(monkeypatch, capsys):
    invalid = {"h1": ["vllm_server_port=99999 is not allowed: an integer from 1 to 65535", "vllm_server_model='' ..."]}
    result = RunResult(
        status="failed",
        rc=2,
        stats={**OK_STATS, "failures": {"h1": 1, "h2": 1}},
        failures=[{"host": "h1", "task": "Stop every host", "kind": "failed", "msg": "bad input"}],
        invalid=invalid,
    )
    monkeypatch.setattr(cli, "run_playbook", _fake_run(result, {}))
    assert cli.main(["deploy", "-q"]) == 4
    out = capsys.readouterr().out
    assert "BAD INPUT (validated on every host first; no host was changed):" in out
    assert "h1: vllm_server_port=99999 is not allowed: an integer from 1 to 65535" in out
    assert "h1: vllm_server_model=''" in out and "Stop every host" not in out


def _fake_run(result: RunResult, seen: dict):
    def fake(project, playbook, **kwargs):
        seen.update(kwargs, playbook=playbook)
        return result

    return fake


@pytest.mark.parametrize(
    ("stats", "failures", "code"),
    [
        (OK_STATS, [], 0),
        ({**OK_STATS, "failures": {"h2": 1}}, [{"host": "h2", "task": "t", "kind": "failed", "msg": "boom"}], 2),
        ({**OK_STATS, "dark": {"h2": 1}}, [{"host": "h2", "task": "t", "kind": "unreachable", "msg": "ssh"}], 3),
    ],
)
def test_deploy_exit_code_and_json(monkeypatch, capsys, tmp_path, stats, failures, code):
    seen: dict = {}
    result = RunResult(
        status="successful" if code == 0 else "failed",
        rc=0 if code == 0 else 2,
        stats=stats,
        failures=failures,
        reported={"h1": {"endpoint": "https://10.0.0.1:8000", "models": ["m"], "ca_file": "/ca.crt"}},
    )
    monkeypatch.setattr(cli, "run_playbook", _fake_run(result, seen))
    monkeypatch.setenv("OCI_VLLM_HF_TOKEN", "hf_from_env_123")
    assert cli.main(["deploy", "--json", "-l", "a10", "-e", "x=1", "--check", "-q"]) == code
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == code and out["check"] is True
    assert out["hosts"]["h1"]["state"] == "ok"
    assert out["hosts"]["h2"]["state"] == {0: "ok", 2: "failed", 3: "unreachable"}[code]
    assert out["failures"] == failures
    assert out["endpoints"]["h1"]["endpoint"] == "https://10.0.0.1:8000"
    # What the runner was asked for: the site playbook, the limit, the extra vars and the secret (in memory only).
    assert seen["playbook"].name == "site.yml" and seen["limit"] == "a10" and seen["extra_vars"] == ["x=1"]
    assert seen["check"] is True and seen["secrets"].hf_token == "hf_from_env_123"


def test_deploy_without_hosts_is_bad_input(monkeypatch, capsys):
    result = RunResult(status="successful", rc=0, stats={"ok": {}, "failures": {}, "dark": {}})
    monkeypatch.setattr(cli, "run_playbook", _fake_run(result, {}))
    assert cli.main(["deploy", "-l", "nothing_matches", "-q"]) == 4
    assert "no host matched" in capsys.readouterr().err


def test_runner_error_without_hosts_is_1(monkeypatch, capsys):
    failure = [{"host": "", "task": "", "kind": "error", "msg": "[ERROR]: Completely failed to parse inventory"}]
    result = RunResult(status="failed", rc=1, stats=None, failures=failure)
    monkeypatch.setattr(cli, "run_playbook", _fake_run(result, {}))
    assert cli.main(["deploy", "-q"]) == 1
    assert "Completely failed to parse inventory" in capsys.readouterr().out


def test_status_not_ready_is_2(monkeypatch, capsys):
    report = {"container_state": "exited", "served_model": "m", "ready": False, "endpoint": "https://h:8000"}
    result = RunResult(
        status="successful", rc=0, stats=OK_STATS, reported={"h1": report, "h2": {**report, "ready": True}}
    )
    monkeypatch.setattr(cli, "run_playbook", _fake_run(result, {}))
    assert cli.main(["status"]) == 2
    out = capsys.readouterr().out
    assert "exited" in out and "h2" in out


def _event(kind, **data):
    return {"event": kind, "event_data": data}


EVENTS = [
    _event("playbook_on_play_start", name="Deploy vLLM endpoints"),
    _event("playbook_on_task_start", name="Say which way the GPU roles go"),
    _event(
        "runner_on_ok",
        host="h1",
        task="Say which way the GPU roles go",
        task_action="ansible.builtin.debug",
        res={"msg": "GPU roles skipped: no GPU"},
    ),
    _event("playbook_on_task_start", name="Install the NVIDIA driver"),
    _event("runner_on_skipped", host="h1", task="Install the NVIDIA driver", res={}),
    _event("playbook_on_task_start", name="Run the vLLM container"),
    _event("runner_on_ok", host="h1", task="Run the vLLM container", task_action="x", res={"changed": True}),
    _event("runner_on_failed", host="h2", task="Run the vLLM container", res={"msg": "port in use"}),
    _event("runner_on_failed", host="h3", task="Run the vLLM container", ignore_errors=True, res={"msg": "meh"}),
    _event("runner_on_unreachable", host="h4", task="Run the vLLM container", res={"msg": "ssh: timed out"}),
    _event("playbook_on_task_start", name="oci-vllm status"),
    _event("runner_on_ok", host="h1", task="oci-vllm status", task_action="debug", res={"msg": {"ready": True}}),
    _event(
        "playbook_on_stats",
        ok={"h1": 3},
        changed={"h1": 1},
        failures={"h2": 1},
        dark={"h4": 1},
        skipped={"h1": 1},
        # set_stats per_host=false, aggregate=true: every host's entry merged under the one key.
        artifact_data={
            "oci_vllm_status": {"h1": {"ready": True}, "h9": "not a dict"},
            "oci_vllm_invalid": {"h2": ["vllm_server_port=0 is not allowed"], "h3": []},
            "other": {"x": 1},
        },
    ),
]


def test_progress_lines():
    stream = io.StringIO()
    progress = Progress(stream=stream)
    assert all(progress(e) is True for e in EVENTS)  # runner keeps every event
    text = stream.getvalue()
    assert "PLAY Deploy vLLM endpoints" in text
    assert "h1               ok  GPU roles skipped: no GPU" in text
    assert "TASK Install the NVIDIA driver" not in text  # skipped everywhere: quiet unless -v
    assert "h1               changed" in text
    assert "h2               FAILED  port in use" in text
    assert "h3               failed (ignored)" in text
    assert "h4               UNREACHABLE  ssh: timed out" in text
    assert "h2               ok=0 changed=0 failed=1 unreachable=0 skipped=0" in text
    assert "h4               ok=0 changed=0 failed=0 unreachable=1 skipped=0" in text


def test_progress_shows_skipped_when_verbose():
    stream = io.StringIO()
    progress = Progress(stream=stream, show_skipped=True)
    for e in EVENTS:
        progress(e)
    assert "TASK Install the NVIDIA driver" in stream.getvalue()


def test_collector_keeps_failures_and_the_reported_status():
    forwarded = []
    collector = _Collector(forwarded.append)
    # ansible-runner writes to the artifacts only the events the handler keeps: the final stats (result.stats).
    kept = [e["event"] for e in EVENTS if collector(e)]
    assert kept == ["playbook_on_stats"]
    assert all(_Collector(None, keep_all=True)(e) for e in EVENTS)  # --keep-artifacts: every event
    assert collector.failures == [
        {"host": "h2", "task": "Run the vLLM container", "kind": "failed", "msg": "port in use"},
        {"host": "h4", "task": "Run the vLLM container", "kind": "unreachable", "msg": "ssh: timed out"},
    ]
    # Only the custom stats count: the debug task of the same name (runner_on_ok) does not.
    assert collector.reported == {"h1": {"ready": True}}
    assert collector.invalid == {"h2": ["vllm_server_port=0 is not allowed"]}  # a host with no message: not invalid
    assert len(forwarded) == len(EVENTS)

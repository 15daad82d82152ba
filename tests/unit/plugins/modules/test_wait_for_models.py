# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""oci_gpu.vllm.wait_for_models main(): argument handling, exit/fail mapping, check mode, no_log of the key."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.oci_gpu.vllm.plugins.modules import wait_for_models
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.wait_for_models_fakes import (
    FakeDockerEngine,
    FakeOpenAIServer,
    Reply,
    free_port,
    models_body,
)

MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
KEY = "sk-module-test-key-5f1e"


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


@pytest.fixture
def captured(monkeypatch):
    """The usual unit-test pattern: exit_json/fail_json raise instead of printing and exiting."""

    def exit_json(self, **kwargs):
        raise AnsibleExitJson(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        kwargs["failed"] = True
        raise AnsibleFailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def keyed_server():
    def models(app):
        if app.requests[-1]["headers"].get("Authorization") != "Bearer " + KEY:
            return Reply(401, {"error": "Unauthorized"})
        return Reply(200, models_body(MODEL))

    routes = {("GET", "/v1/models"): models, ("GET", "/version"): lambda app: Reply(200, {"version": "0.32.0"})}
    return FakeOpenAIServer(routes)


def run_main(args):
    with patch_module_args(args):
        wait_for_models.main()


def test_success_returns_models_and_is_never_changed(captured):
    with keyed_server() as server, pytest.raises(AnsibleExitJson) as done:
        run_main({"url": server.url, "model": MODEL, "api_key": KEY, "interval": 0.05})
    result = done.value.args[0]
    assert result["changed"] is False
    assert result["models"] == [MODEL]
    assert result["server_version"] == "0.32.0"
    assert result["attempts"] == 1 and isinstance(result["elapsed"], float)


def test_check_mode_polls_for_real(captured):
    with keyed_server() as server, pytest.raises(AnsibleExitJson) as done:
        run_main({"url": server.url, "model": MODEL, "api_key": KEY, "_ansible_check_mode": True})
    assert done.value.args[0]["models"] == [MODEL]
    assert server.count("/v1/models") == 1


def test_wrong_key_fails_with_the_domain_message(captured):
    with keyed_server() as server, pytest.raises(AnsibleFailJson) as failed:
        run_main({"url": server.url, "model": MODEL, "api_key": "wrong-key", "timeout": 30})
    result = failed.value.args[0]
    assert "rejected the API key" in result["msg"]
    assert result["attempts"] == 1 and result["changed"] is False


def test_container_exit_is_reported_with_log_tail(captured):
    with FakeDockerEngine() as engine:
        vllm = engine.add("vllm-test")
        vllm.log("RuntimeError: Engine core initialization failed", stream=2)
        vllm.exit(code=1)
        with pytest.raises(AnsibleFailJson) as failed:
            run_main(
                {
                    "url": "http://127.0.0.1:%d" % free_port(),
                    "model": MODEL,
                    "timeout": 20,
                    "container": "vllm-test",
                    "docker_socket": engine.socket_path,
                }
            )
    result = failed.value.args[0]
    assert "'vllm-test' is exited" in result["msg"]
    assert result["log_tail"] == ["RuntimeError: Engine core initialization failed"]
    assert result["container_state"]["status"] == "exited"


def test_bad_url_is_rejected_naming_the_value(captured):
    with pytest.raises(AnsibleFailJson) as failed:
        run_main({"url": "http://127.0.0.1:8000/v1", "model": MODEL})
    assert "without /v1" in failed.value.args[0]["msg"] and "http://127.0.0.1:8000/v1" in failed.value.args[0]["msg"]


def test_real_output_never_contains_the_key(capsys):
    """No patching: the JSON the module really prints, on success and on failure, must not carry the key."""
    with keyed_server() as server:
        for args in (
            {"url": server.url, "model": MODEL, "api_key": KEY},
            {"url": server.url, "model": "absent " + KEY, "api_key": KEY, "timeout": 0.2, "interval": 0.05},
        ):
            with pytest.raises(SystemExit):
                run_main(args)
            printed = capsys.readouterr().out
            assert json.loads(printed)["invocation"]["module_args"]["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
            assert KEY not in printed

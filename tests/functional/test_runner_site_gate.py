"""site.yml through the wrapper on local hosts: the GPU decision is reported, bad input on any host stops every host
in the validation play (exit 4), and a host that fails later stops the later batches (serial + max_fail_percentage
0). Nothing here changes the machine: the runs fail in validation or run only the read-only health gate."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys

import pytest

from oci_vllm import cli
from oci_vllm.errors import ExitCode
from oci_vllm.progress import Progress
from oci_vllm.project import find_project
from oci_vllm.runner import run_playbook

PROJECT = find_project()
HOSTS = ["gate-1", "gate-2", "gate-3", "gate-4", "gate-5"]


@pytest.fixture(autouse=True)
def venv_on_path(monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])


def _inventory(tmp_path, host_vars: str) -> str:
    lines = ["[vllm_servers]"]
    lines += [f"{h} ansible_connection=local ansible_python_interpreter={sys.executable} {host_vars}" for h in HOSTS]
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class _Plays:
    """Progress display plus a record of which hosts ran a task in which play (the plays' names are the contract)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.progress = Progress(stream=self.stream)
        self.hosts_by_play: dict[str, set[str]] = {}

    def __call__(self, event: dict) -> bool:
        data = event.get("event_data") or {}
        if event.get("event", "").startswith("runner_on_") and data.get("host"):
            self.hosts_by_play.setdefault(str(data.get("play", "")), set()).add(str(data["host"]))
        return self.progress(event)


DEPLOY_PLAY = "Deploy vLLM endpoints"


def _run(tmp_path, host_vars: str, extra: list[str], tags: str | None = None):
    plays = _Plays()
    result = run_playbook(
        PROJECT,
        PROJECT.site_playbook,
        inventory=_inventory(tmp_path, host_vars),
        extra_vars=extra,
        event_handler=plays,
        runner_kwargs={"tags": tags} if tags else None,
    )
    return result, plays.stream.getvalue(), plays


def test_bad_input_on_any_host_stops_every_host_before_any_change(tmp_path):
    # Hosts without GPU roles but asked for a GPU container: bad input, found by the validation play on every host.
    result, progress, plays = _run(tmp_path, "oci_vllm_gpu_hosts=false", ["vllm_server_gpus=all"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert sorted(result.invalid) == HOSTS
    message = result.invalid["gate-1"][0]
    assert "vllm_server_gpus=all" in message and "allowed" in message
    assert DEPLOY_PLAY not in plays.hosts_by_play, "no host may start the deploy play after bad input"
    assert "GPU roles (nvidia_driver, container_toolkit) skipped" in progress


# A failure after validation (here: the health gate on hosts that run no vLLM; escalation off, these are local root
# hosts without sudo) fails the first batch and stops the later ones (serial + max_fail_percentage 0).
_GATE_ONLY = "oci_vllm_gpu_hosts=false ansible_become=false vllm_server_gpus=none vllm_server_model_download=false"


def test_first_batch_failure_stops_the_rollout(tmp_path):
    result, _progress, plays = _run(tmp_path, _GATE_ONLY, ["oci_vllm_health_timeout=1"], tags="health_gate")
    assert result.exit_code == ExitCode.HOSTS_FAILED and not result.invalid
    assert plays.hosts_by_play[DEPLOY_PLAY] == {"gate-1"}, "later batches must not start after a failed batch"
    assert {f["host"] for f in result.failures} == {"gate-1"}


def test_batches_follow_oci_vllm_serial(tmp_path):
    # With batches of 2 the first batch has two hosts: both fail there, nobody else is touched.
    result, _progress, plays = _run(
        tmp_path, _GATE_ONLY, ["oci_vllm_health_timeout=1", '{"oci_vllm_serial": [2]}'], tags="health_gate"
    )
    assert result.exit_code == ExitCode.HOSTS_FAILED
    assert plays.hosts_by_play[DEPLOY_PLAY] == {"gate-1", "gate-2"}


def test_gpu_detection_without_inventory_hint(tmp_path):
    # No oci_vllm_gpu_hosts, no gpu_count, no nvidia_driver_shape: the decision comes from /dev/nvidia* on the host.
    has_gpu = any(n.startswith("nvidia") and n[6:].isdigit() for n in os.listdir("/dev"))
    extra = ["vllm_server_gpus=all"] if not has_gpu else ["vllm_server_gpus=none"]
    result, progress, _plays = _run(tmp_path, "", extra)
    if has_gpu:
        pytest.skip("this machine has an NVIDIA GPU: the GPU roles would really run")
    assert (
        "skipped: no GPU on this host (inventory gpu_count=0, nvidia_driver_shape=unset, 0 /dev/nvidia* device(s))"
        in progress
    )
    assert result.exit_code == ExitCode.BAD_INPUT and sorted(result.invalid) == HOSTS


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs an ssh client")
def test_unreachable_host_exits_3(tmp_path, capsys):
    inventory = tmp_path / "unreachable.ini"
    inventory.write_text(
        "[vllm_servers]\nclosed-port ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh ansible_user=nobody\n"
    )
    assert cli.main(["deploy", "-i", str(inventory), "--json", "-q"]) == ExitCode.UNREACHABLE == 3
    report = json.loads(capsys.readouterr().out)
    assert report["hosts"]["closed-port"]["state"] == "unreachable"
    assert report["failures"][0]["kind"] == "unreachable" and "port 1" in report["failures"][0]["msg"]

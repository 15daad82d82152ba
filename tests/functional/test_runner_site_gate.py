"""site.yml through the wrapper on local hosts: the GPU decision is reported, and a host that fails stops the later
batches (serial + max_fail_percentage 0). Fails before any role task changes anything."""

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


def _run(tmp_path, host_vars: str, extra: list[str]):
    stream = io.StringIO()
    result = run_playbook(
        PROJECT,
        PROJECT.site_playbook,
        inventory=_inventory(tmp_path, host_vars),
        extra_vars=extra,
        event_handler=Progress(stream=stream),
    )
    return result, stream.getvalue()


def test_first_batch_failure_stops_the_rollout(tmp_path):
    # Hosts without GPU roles but asked for a GPU container: bad input that fails the first host's first batch.
    result, progress = _run(tmp_path, "oci_vllm_gpu_hosts=false", ["vllm_server_gpus=all"])
    assert result.exit_code == ExitCode.HOSTS_FAILED
    assert result.hosts() == ["gate-1"], "later batches must not start after a failed batch"
    assert result.failures[0]["host"] == "gate-1"
    assert "vllm_server_gpus=all" in result.failures[0]["msg"] and "allowed" in result.failures[0]["msg"]
    assert "GPU roles (nvidia_driver, container_toolkit) skipped" in progress


def test_batches_follow_oci_vllm_serial(tmp_path):
    # With batches of 2 the first batch has two hosts: both fail there, nobody else is touched.
    result, _progress = _run(tmp_path, "oci_vllm_gpu_hosts=false", ["vllm_server_gpus=all", '{"oci_vllm_serial": [2]}'])
    assert result.hosts() == ["gate-1", "gate-2"]


def test_gpu_detection_without_inventory_hint(tmp_path):
    # No oci_vllm_gpu_hosts, no gpu_count, no nvidia_driver_shape: the decision comes from /dev/nvidia* on the host.
    has_gpu = any(n.startswith("nvidia") and n[6:].isdigit() for n in os.listdir("/dev"))
    result, progress = _run(tmp_path, "", ["vllm_server_gpus=all"] if not has_gpu else ["vllm_server_gpus=none"])
    if has_gpu:
        pytest.skip("this machine has an NVIDIA GPU: the GPU roles would really run")
    assert (
        "skipped: no GPU on this host (inventory gpu_count=0, nvidia_driver_shape=unset, 0 /dev/nvidia* device(s))"
        in progress
    )
    assert result.exit_code == ExitCode.HOSTS_FAILED and result.hosts() == ["gate-1"]


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

"""container_toolkit logic that needs no Docker: preflight messages and the daemon.json merge decisions.

Each test runs one tag of the role in check mode against the local machine, so nothing on the machine changes
(the real install/restart path is covered by `molecule test -s container_toolkit`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible_local import run_role


def _run_tag(tmp_path: Path, tag: str, extra_vars: dict) -> subprocess.CompletedProcess:
    return run_role(tmp_path, "container_toolkit", extra_vars, options=("--check", "--tags", tag), gather_facts=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        ({"container_toolkit_version": "latest"}, "container_toolkit_version='latest' is not allowed"),
        (
            {"container_toolkit_repo_keyring": "/etc/apt/keyrings/nvidia.key"},
            "container_toolkit_repo_keyring='/etc/apt/keyrings/nvidia.key' is not allowed: give an absolute path",
        ),
        (
            {"container_toolkit_docker_daemon_options": {"default-runtime": "runc"}},
            "'runtimes' and 'default-runtime' are not allowed there",
        ),
        (
            {"container_toolkit_docker_repo_url": "https://download.docker.com/linux/ubuntu"},
            "container_toolkit_docker_repo_key_url='' is not allowed",
        ),
        ({"container_toolkit_docker_packages": []}, "container_toolkit_docker_packages=[] is not allowed"),
        ({"container_toolkit_default_runtime": "sometimes"}, "container_toolkit_default_runtime"),
    ],
    ids=["version", "keyring", "daemon-options", "docker-repo-without-key", "no-docker-packages", "argument-spec"],
)
def test_bad_input_fails_in_preflight_naming_the_value(tmp_path: Path, extra_vars: dict, expected: str) -> None:
    result = _run_tag(tmp_path, "container_toolkit_preflight", extra_vars)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert expected in output


@pytest.mark.slow
def test_good_input_passes_the_variable_checks(tmp_path: Path) -> None:
    result = _run_tag(tmp_path, "container_toolkit_preflight", {})
    output = " ".join((result.stdout + result.stderr).split())
    distribution = Path("/etc/os-release").read_text()
    if 'VERSION_ID="22.04"' in distribution or 'VERSION_ID="24.04"' in distribution:
        assert result.returncode == 0, output
    else:
        # Not Ubuntu 22.04/24.04 here: the variables pass, then the OS check names what it found.
        assert "is not allowed" not in output
        assert "container_toolkit supports Ubuntu 22.04 and 24.04; this host runs" in output
        assert result.returncode != 0


def _configure(tmp_path: Path, daemon_json: str, **extra_vars: object) -> tuple[subprocess.CompletedProcess, str]:
    config = tmp_path / "daemon.json"
    config.write_text(daemon_json)
    result = _run_tag(
        tmp_path, "container_toolkit_configure", {"container_toolkit_docker_daemon_config": str(config), **extra_vars}
    )
    return result, " ".join((result.stdout + result.stderr).split())


@pytest.mark.slow
def test_daemon_json_that_is_not_json_stops_the_role(tmp_path: Path) -> None:
    result, output = _configure(tmp_path, '{"log-driver": "local",')
    assert result.returncode != 0
    assert "daemon.json on localhost is not valid JSON" in output
    assert (tmp_path / "daemon.json").read_text() == '{"log-driver": "local",'


@pytest.mark.slow
def test_daemon_json_that_is_not_an_object_stops_the_role(tmp_path: Path) -> None:
    result, output = _configure(tmp_path, '["log-driver"]')
    assert result.returncode != 0
    assert "daemon.json on localhost holds a JSON list; Docker needs a JSON object there" in output


@pytest.mark.slow
def test_daemon_json_already_holding_the_runtime_is_left_alone(tmp_path: Path) -> None:
    # Formatted differently from what the role writes: equal content must not be rewritten (no restart either).
    existing = (
        '{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": ["--debug"]}},'
        ' "log-opts": {"max-size": "10m"}, "log-driver": "json-file"}'
    )
    result, output = _configure(tmp_path, existing)
    assert result.returncode == 0, output
    assert "Write the merged Docker daemon configuration] *** skipping" in output
    assert "RUNNING HANDLER" not in output
    assert (tmp_path / "daemon.json").read_text() == existing

"""Secrets reach the play but never the ansible-runner private data dir (artifacts, events, stdout, command/env)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import ansible_runner
import pytest

from oci_vllm import secrets as secrets_mod
from oci_vllm.errors import BadInput, ExitCode
from oci_vllm.project import find_project
from oci_vllm.runner import run_playbook
from oci_vllm.secrets import Secrets, load_secrets, scrubbed_environ, secret_vars_file

FAKE_TOKEN = "hf_OciVllmRunnerTestToken9f3b2a71c"
FAKE_KEY = "ApiKeyOciVllmRunnerTest5e8d1c0b77aa"
PROJECT = find_project()


def _grep_tree(root: str, needle: str) -> list[str]:
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                if needle.encode() in handle.read():
                    hits.append(path)
    return hits


def test_file_beats_environment(tmp_path):
    token_file = tmp_path / "hf"
    token_file.write_text(FAKE_TOKEN + "\n")
    env = {"OCI_VLLM_HF_TOKEN": "hf_env", "OCI_VLLM_API_KEY": "key_env"}
    assert load_secrets(str(token_file), None, env) == Secrets(hf_token=FAKE_TOKEN, api_key="key_env")
    assert load_secrets(None, None, {"HF_TOKEN": "hf_b"}).hf_token == "hf_b"
    assert load_secrets(None, None, {}) == Secrets()


def test_secret_file_must_be_one_line(tmp_path):
    bad = tmp_path / "two-lines"
    bad.write_text("a\nb\n")
    with pytest.raises(BadInput, match="one line"):
        load_secrets(str(bad), None, {})


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OCI_VLLM_API_KEY", True),
        ("HF_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("ANSIBLE_VAULT_PASSWORD_FILE", False),
        ("OCI_VLLM_HF_TOKEN_FILE", False),
        ("PATH", False),
        ("HOME", False),
    ],
)
def test_secret_env_names(name, secret):
    assert secrets_mod.is_secret_env_name(name) is secret


def test_scrubbed_environ_restores(monkeypatch):
    monkeypatch.setenv("OCI_VLLM_API_KEY", FAKE_KEY)
    with scrubbed_environ() as removed:
        assert "OCI_VLLM_API_KEY" in removed and "OCI_VLLM_API_KEY" not in os.environ
    assert os.environ["OCI_VLLM_API_KEY"] == FAKE_KEY


def test_secret_vars_file_is_private_and_removed():
    with secret_vars_file(Secrets(hf_token=FAKE_TOKEN)) as path:
        assert path is not None
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert FAKE_TOKEN in Path(path).read_text()
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    with secret_vars_file(Secrets()) as nothing:
        assert nothing is None


PLAY = """---
- name: Use the secrets the way the roles do
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write the token where the test can check it arrived
      ansible.builtin.copy:
        dest: "{{ out_dir }}/received"
        content: "{{ vllm_server_hf_token }}|{{ vllm_server_api_key }}"
        mode: "0600"
      no_log: true
    - name: A normal task next to it
      ansible.builtin.debug:
        msg: "token length {{ vllm_server_hf_token | length }}"
"""


@pytest.fixture
def play(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(PLAY)
    return path


def test_real_run_passes_secrets_but_keeps_them_out_of_artifacts(tmp_path, play, monkeypatch):
    # The CLI's path: secrets from the environment, read into memory, then a run with artifacts kept for the grep.
    monkeypatch.setenv("OCI_VLLM_HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("OCI_VLLM_API_KEY", FAKE_KEY)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    secrets = load_secrets(None, None)
    events: list[dict] = []
    result = run_playbook(
        PROJECT,
        play,
        inventory="localhost,",
        extra_vars=[f"out_dir={tmp_path}"],
        secrets=secrets,
        event_handler=lambda e: events.append(e) or True,
        keep_artifacts=True,
        verbosity=3,
    )
    try:
        assert result.exit_code == ExitCode.OK, result.failures
        assert (tmp_path / "received").read_text() == f"{FAKE_TOKEN}|{FAKE_KEY}"  # the play did get them
        assert result.private_data_dir and os.path.isdir(result.private_data_dir)
        artifacts = os.listdir(os.path.join(result.private_data_dir, "artifacts"))
        assert artifacts, "nothing to grep: the run wrote no artifacts"
        assert _grep_tree(result.private_data_dir, FAKE_TOKEN) == []
        assert _grep_tree(result.private_data_dir, FAKE_KEY) == []
        assert not any(FAKE_TOKEN in str(e) or FAKE_KEY in str(e) for e in events)
        assert any("token length 34" in str(e) for e in events)
    finally:
        shutil.rmtree(str(result.private_data_dir), ignore_errors=True)
    # The environment is back as it was for the rest of the process.
    assert os.environ["OCI_VLLM_HF_TOKEN"] == FAKE_TOKEN


def test_grep_finds_a_leak_when_the_environment_is_not_scrubbed(play, monkeypatch):
    """Control: plain ansible-runner records the environment in artifacts/*/command, so the grep above can fail."""
    monkeypatch.setenv("OCI_VLLM_HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    private = tempfile.mkdtemp(prefix="oci-vllm-test-")
    try:
        ansible_runner.run(
            private_data_dir=private,
            playbook=str(play),
            inventory="localhost,",
            extravars={"out_dir": private, "vllm_server_hf_token": "x", "vllm_server_api_key": "y"},
            suppress_env_files=True,
            quiet=True,
        )
        assert any(p.endswith("command") for p in _grep_tree(private, FAKE_TOKEN))
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_private_data_dir_is_removed_by_default(play, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    before = set(os.listdir(tempfile.gettempdir()))
    result = run_playbook(
        PROJECT,
        play,
        inventory="localhost,",
        extra_vars=[f"out_dir={tmp_path}"],
        secrets=Secrets(hf_token=FAKE_TOKEN, api_key=FAKE_KEY),
    )
    assert result.exit_code == ExitCode.OK and result.private_data_dir is None
    leftovers = {
        n
        for n in set(os.listdir(tempfile.gettempdir())) - before
        if n.startswith(("oci-vllm-run-", "oci-vllm-secrets-"))
    }
    assert leftovers == set()

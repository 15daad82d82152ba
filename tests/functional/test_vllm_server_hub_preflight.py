"""vllm_server preflight asks the hub before anything changes: a missing, unknown or ungranted token, a wrong repo
and a disk too small stop the run with a message naming what is wrong and what to do; the token never shows.

The role's preflight tag in check mode against the local machine (nothing changes), the hub emulator in this process
(tests/functional/hf_hub_emulator.py; its fidelity to the real client: test_hf_hub.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from ansible_local import run_role
from hf_hub_emulator import HubEmulator, Repo

GATED = "mistralai/Mistral-7B-Instruct-v0.2"
GRANTED = "hf_preflight_granted_%s" % os.urandom(8).hex()
NOT_GRANTED = "hf_preflight_valid_%s" % os.urandom(8).hex()
UNKNOWN = "hf_preflight_unknown_%s" % os.urandom(8).hex()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    model = tmp_path_factory.mktemp("model")
    (model / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}')
    (model / "model.safetensors").write_bytes(os.urandom(64 * 1024))
    with HubEmulator([Repo(GATED, str(model), gated=True, granted_tokens=[GRANTED])], valid_tokens=[NOT_GRANTED]) as h:
        yield h


def _preflight(tmp_path: Path, hub: HubEmulator, **variables):
    # Variables from a file: a token on the command line would sit in ansible-playbook's argv.
    vars_file = tmp_path / "vars.yml"
    base = {"vllm_server_hf_endpoint": hub.endpoint, "vllm_server_model": GATED, "ansible_become": False,
            "vllm_server_cache_dir": str(tmp_path / "cache"), "vllm_server_hf_token_file": str(tmp_path / "hf_token"),
            "vllm_server_image": "oci-vllm-test/not-pulled:1"}  # fmt: skip
    vars_file.write_text(yaml.safe_dump(dict(base, **variables)))
    options = ("--check", "--tags", "vllm_server_preflight", "-e", "@%s" % vars_file)
    result = run_role(tmp_path, "vllm_server", {}, options=options)
    output = " ".join((result.stdout + result.stderr).split())
    for token in (GRANTED, NOT_GRANTED, UNKNOWN):
        assert token not in output
    return result.returncode, output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "is gated and needs a token (401"),
        ({"vllm_server_hf_token": UNKNOWN}, "refused the token from the token argument"),
        ({"vllm_server_hf_token": NOT_GRANTED}, "is valid but not granted access to the gated repository"),
        ({"vllm_server_hf_token": GRANTED, "vllm_server_model": "mistralai/No-Such-Model"}, "(404"),
        ({"vllm_server_hf_token": GRANTED, "vllm_server_image_disk_gb": 10**9}, "Not enough free disk for the model"),
    ],
    ids=["no-token", "unknown-token", "not-granted", "no-such-repo", "disk"],
)
def test_hub_refusals_stop_preflight(tmp_path: Path, hub: HubEmulator, variables: dict, expected: str) -> None:
    rc, output = _preflight(tmp_path, hub, **variables)
    assert rc != 0 and expected in output, output[-3000:]
    assert not (tmp_path / "cache").exists(), "preflight wrote into the model cache"


@pytest.mark.slow
def test_granted_token_passes_and_a_stored_one_is_used(tmp_path: Path, hub: HubEmulator) -> None:
    rc, output = _preflight(tmp_path, hub, vllm_server_hf_token=GRANTED)
    assert rc == 0, output[-3000:]
    # No token given, the stored one (what configure wrote on an earlier run) is read instead.
    (tmp_path / "hf_token").write_text(GRANTED)
    rc, output = _preflight(tmp_path, hub)
    assert rc == 0, output[-3000:]

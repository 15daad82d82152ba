"""vllm_server preflight: bad input fails with a message naming the value and what is allowed, before any change.

Runs only the role's preflight tag, in check mode, against the local machine: nothing on the machine changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = """
- hosts: all
  gather_facts: false
  roles:
    - oci_gpu.vllm.vllm_server
"""


def _preflight(tmp_path: Path, extra_vars: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "--check", "--tags", "vllm_server_preflight"]
    argv += ["-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}), str(playbook)]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        (
            {"vllm_server_dtype": "fp4"},
            "vllm_server_dtype must be one of: auto, half, float16, bfloat16, float, float32",
        ),
        ({"vllm_server_tensor_parallel_size": 3}, "vllm_server_tensor_parallel_size must be one of: 1, 2, 4, 8"),
        ({"vllm_server_quantization": "int3"}, "vllm_server_quantization must be one of"),
        ({"vllm_server_gpus": "some"}, "vllm_server_gpus must be one of: all, none"),
        ({"vllm_server_port": 70000}, "vllm_server_port=70000 is not allowed: an integer from 1 to 65535"),
        ({"vllm_server_port": 0}, "vllm_server_port=0 is not allowed"),
        (
            {"vllm_server_gpu_memory_utilization": 1.5},
            "vllm_server_gpu_memory_utilization=1.5 is not allowed: a fraction greater than 0 and at most 1",
        ),
        ({"vllm_server_gpu_memory_utilization": 0}, "vllm_server_gpu_memory_utilization=0 is not allowed"),
        (
            {"vllm_server_tensor_parallel_size": 4, "nvidia_driver_gpus": 1},
            "vllm_server_tensor_parallel_size=4 but this host has 1 GPU(s)",
        ),
        (
            {"vllm_server_model": "mistralai/Mixtral-8x7B-Instruct-v0.1", "nvidia_driver_gpus": 4},
            "mistralai/Mixtral-8x7B-Instruct-v0.1 (Mixtral 8x7B) does not fit on 4 GPU(s) unquantized",
        ),
        ({"vllm_server_extra_args": ["--api-key=abc"]}, "Secrets must not be passed in vllm_server_extra_args"),
        ({"vllm_server_env": {"HF_TOKEN": "abc"}}, "Secrets must not be passed in vllm_server_extra_args"),
    ],
    ids=[
        "dtype",
        "tp-choice",
        "quantization",
        "gpus",
        "port-high",
        "port-zero",
        "gpu-mem-high",
        "gpu-mem-zero",
        "tp-above-gpu-count",
        "mixtral-unquantized-on-4",
        "api-key-on-argv",
        "token-in-env",
    ],
)
def test_bad_input_fails_in_preflight_naming_the_value(tmp_path: Path, extra_vars: dict, expected: str) -> None:
    result = _preflight(tmp_path, extra_vars)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert expected in output


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra_vars",
    [
        {},
        {
            "vllm_server_model": "TheBloke/mixtral-8x7b-v0.1-AWQ",
            "vllm_server_quantization": "awq",
            "vllm_server_tensor_parallel_size": 4,
            "vllm_server_gpu_memory_utilization": 0.95,
            "nvidia_driver_gpus": 4,
        },
        {
            "vllm_server_model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
            "vllm_server_tensor_parallel_size": 8,
            "nvidia_driver_gpus": 8,
        },
    ],
    ids=["defaults", "mixtral-awq-tp4", "mixtral-8-gpus"],
)
def test_good_input_passes_preflight(tmp_path: Path, extra_vars: dict) -> None:
    result = _preflight(tmp_path, extra_vars)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output
    assert "failed=0" in output

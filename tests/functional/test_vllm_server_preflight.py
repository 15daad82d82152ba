"""vllm_server preflight: bad input fails with a message naming the value and what is allowed, before any change.

Runs only the role's preflight tag, in check mode, against the local machine: nothing on the machine changes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible_local import run_role


def _preflight(tmp_path: Path, extra_vars: dict) -> subprocess.CompletedProcess:
    # No hub here: the hub check (last in preflight) has its own tests (test_vllm_server_hub_preflight.py, the story).
    extra_vars = dict({"vllm_server_model_download": False}, **extra_vars)
    return run_role(tmp_path, "vllm_server", extra_vars, options=("--check", "--tags", "vllm_server_preflight"))


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
            {
                "vllm_server_model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
                "vllm_server_shape": "BM.GPU.A10.4",
                "vllm_server_tensor_parallel_size": 4,
            },
            "vllm_server_model=mistralai/Mixtral-8x7B-Instruct-v0.1 needs 21.75 GiB of weights per GPU at "
            "vllm_server_tensor_parallel_size=4 but BM.GPU.A10.4 leaves",
        ),
        (
            {"vllm_server_shape": "VM.GPU.A10.1", "vllm_server_max_model_len": 32768},
            "vllm_server_max_model_len=32768 needs 4.0 GiB of KV cache per sequence but VM.GPU.A10.1 leaves",
        ),
        ({"vllm_server_shape": "VM.GPU.A10.1", "vllm_server_tensor_parallel_size": 2}, "this host has 1 GPU(s)"),
        ({"vllm_server_model": ""}, "vllm_server_model='' is not allowed: a Hugging Face model id"),
        ({"vllm_server_model": "org/a--b"}, "vllm_server_model='org/a--b' is not allowed"),
        ({"vllm_server_model": "/models/x/"}, "vllm_server_model='/models/x/' is not allowed"),
        ({"vllm_server_served_model_name": "two words"}, "vllm_server_served_model_name='two words' is not allowed"),
        (
            {"vllm_server_model": "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ", "vllm_server_quantization": "fp8"},
            "vllm_server_quantization=",
        ),
        ({"vllm_server_extra_args": ["--api-key=abc"]}, "Secrets must not be passed in vllm_server_extra_args"),
        ({"vllm_server_env": {"HF_TOKEN": "abc"}}, "Secrets must not be passed in vllm_server_extra_args"),
        ({"vllm_server_front": "haproxy"}, "vllm_server_front must be one of: nginx, none"),
        (
            {"vllm_server_front": "none"},
            "vllm_server_front=none with vllm_server_bind_address=0.0.0.0 is not allowed: nginx; none only on a",
        ),
        ({"vllm_server_tls": False}, "vllm_server_tls=False with vllm_server_bind_address=0.0.0.0 is not allowed"),
        (
            {"vllm_server_backend_port": 8000},
            "vllm_server_backend_port=8000 is not allowed: an integer from 1 to 65535 other",
        ),
        ({"vllm_server_tls_cert_file": "/x.crt"}, "vllm_server_tls_cert_file / vllm_server_tls_key_file='/x.crt' / ''"),
        ({"vllm_server_front_routes": [{"path": "/v1/../invocations", "methods": ["POST"]}]}, "/v1/../invocations"),
        ({"vllm_server_front_routes": [{"path": "/v1/models", "methods": ["TRACE"]}]}, "methods a non-empty list of"),
        ({"vllm_server_front_routes": [{"path": "/v1/models ~", "methods": ["GET"]}]}, "each path exact and unique"),
        ({"vllm_server_front_metrics_cidrs": ["10.0.0.0/33"]}, "vllm_server_front_metrics_cidrs=['10.0.0.0/33']"),
        ({"vllm_server_front_max_body_size": "1g"}, "vllm_server_front_max_body_size=1g is not allowed"),
        ({"vllm_server_bind_address": "::"}, "vllm_server_bind_address=:: is not allowed: an IPv4 address"),
        (
            {"vllm_server_api_key_required": False},
            "vllm_server_api_key_required=False with vllm_server_bind_address=0.0.0.0 is not allowed",
        ),
        ({"vllm_server_api_key": "short"}, "vllm_server_api_key (value not shown, 5 characters) is not allowed"),
        ({"vllm_server_api_key": 'has"quote-and-is-long-enough'}, "(value not shown, 28 characters)"),
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
        "mixtral-unquantized-on-a10-4",
        "mistral-32k-on-one-a10",
        "tp-above-shape-gpus",
        "model-empty",
        "model-double-dash",
        "model-path-trailing-slash",
        "served-name-space",
        "quantization-mismatch",
        "api-key-on-argv",
        "token-in-env",
        "front-choice",
        "front-none-public",
        "tls-off-public",
        "backend-port-clash",
        "cert-without-key",
        "route-dot-segment",
        "route-method",
        "route-chars",
        "metrics-cidr",
        "body-size",
        "bind-ipv6",
        "keyless-public",
        "api-key-short",
        "api-key-chars",
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
            "vllm_server_model": "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ",
            "vllm_server_quantization": "awq_marlin",
            "vllm_server_tensor_parallel_size": 4,
            "vllm_server_gpu_memory_utilization": 0.95,
            "vllm_server_max_model_len": 8192,
            "vllm_server_shape": "BM.GPU.A10.4",
        },
        {
            "vllm_server_model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
            "vllm_server_tensor_parallel_size": 8,
            "nvidia_driver_gpus": 8,
            "vllm_server_shape": "BM.GPU4.8",
        },
        {"vllm_server_front": "none", "vllm_server_bind_address": "127.0.0.1"},
        {
            "vllm_server_tls": False,
            "vllm_server_bind_address": "127.0.0.1",
            "vllm_server_front_routes": [{"path": "/v1/embeddings", "methods": ["POST"]}],
            "vllm_server_front_metrics_cidrs": ["10.0.0.0/24"],
            "vllm_server_api_key": "abcdefghijklmnop-._~+/==",
        },
    ],
    ids=[
        "defaults",
        "mixtral-instruct-awq-on-a10-4",
        "mixtral-on-gpu4-8",
        "front-none-loopback",
        "plain-loopback-custom-routes",
    ],
)
def test_good_input_passes_preflight(tmp_path: Path, extra_vars: dict) -> None:
    result = _preflight(tmp_path, extra_vars)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output
    assert "failed=0" in output

"""vllm_server on a GPU host, in check mode: the container it would run matches the seed's Mixtral command.

No GPU here, so the GPU settings are checked where they are decided: the docker_container arguments the role computes
(device request, shared IPC for tensor parallelism, flags), read from the JSON callback in check mode. Nothing is
created: not the files, not the container. The secrets appear nowhere in the output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ansible_local import run_role

IMAGE = "oci-vllm-test/vllm-cpu:0.32.0"
HF_TOKEN = "hf_CheckModeStandInToken5e2f"
API_KEY = "checkModeStandInApiKey9b7c3a"


def _docker_image_present(name: str) -> bool:
    try:
        return subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.docker
@pytest.mark.skipif(not _docker_image_present(IMAGE), reason=f"{IMAGE} not built (scripts/vllm-cpu-image.sh)")
def test_mixtral_awq_tp4_container_arguments_in_check_mode(tmp_path: Path) -> None:
    extra_vars = {
        "nvidia_driver_gpus": 4,
        "vllm_server_image": IMAGE,  # a local image: check mode does not pull
        "vllm_server_container_name": "pytest-vllm-server-checkmode",
        "vllm_server_port": 18099,
        "vllm_server_backend_port": 18098,
        "vllm_server_tls_ca_dir": str(tmp_path / "control-node-ca"),
        "vllm_server_model": "TheBloke/mixtral-8x7b-v0.1-AWQ",
        "vllm_server_model_download": False,  # no hub here (the download: test_hf_hub.py, the story)
        "vllm_server_quantization": "awq",
        "vllm_server_tensor_parallel_size": 4,
        "vllm_server_gpu_memory_utilization": 0.95,
        "vllm_server_enforce_eager": True,
        "vllm_server_hf_token": HF_TOKEN,
        "vllm_server_api_key": API_KEY,
        "vllm_server_config_dir": str(tmp_path / "etc"),
        "vllm_server_hf_token_file": str(tmp_path / "etc" / "hf_token"),
        "vllm_server_cache_dir": str(tmp_path / "cache"),
    }
    result = run_role(
        tmp_path,
        "vllm_server",
        extra_vars,
        options=("--check", "--skip-tags", "vllm_server_install"),
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for secret in (HF_TOKEN, API_KEY):
        assert secret not in result.stdout and secret not in result.stderr

    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    run = next(iter(next(t for t in tasks if "Run the vLLM container" in t["task"]["name"])["hosts"].values()))
    args = run["invocation"]["module_args"]
    assert args["command"] == [
        # Behind the front: vLLM on the loopback only.
        "vllm", "serve", "TheBloke/mixtral-8x7b-v0.1-AWQ", "--host", "127.0.0.1", "--port", "18098",
        "--dtype", "auto", "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.95",
        "--quantization", "awq", "--enforce-eager",
    ]  # fmt: skip
    assert args["entrypoint"] == ["/bin/sh", "/run/oci-vllm/entrypoint.sh"]
    assert args["device_requests"][0]["driver"] == "nvidia"
    assert args["device_requests"][0]["count"] == -1
    assert args["device_requests"][0]["capabilities"] == [["gpu"]]
    assert args["ipc_mode"] == "host"
    assert args["env"] == {"HF_HOME": "/root/.cache/huggingface", "HF_TOKEN_PATH": "/run/oci-vllm/hf_token"}
    assert f"{tmp_path}/etc/hf_token:/run/oci-vllm/hf_token:ro" in args["volumes"]
    assert args["restart_policy"] == "unless-stopped"
    assert args["log_driver"] == "json-file"
    assert args["network_mode"] == "host"
    assert "published_ports" not in args or not args["published_ports"]
    assert run["changed"] is True
    # Check mode wrote nothing on the control node either: no CA was made.
    assert not (tmp_path / "control-node-ca").exists()
    # Check mode: nothing was written and no container exists.
    assert not (tmp_path / "etc").exists()
    assert not (tmp_path / "cache").exists()
    inspect = subprocess.run(["docker", "inspect", "pytest-vllm-server-checkmode"], capture_output=True, check=False)
    assert inspect.returncode != 0

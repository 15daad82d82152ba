"""What a bare OCI-like test host downloads from, served by the control node on the docker0 gateway, and the
variables that point the roles at it (the only ones that differ from a real OCI host's). Used by the story
(test_story.py) and the bare-host benchmark (benchmarks/bench_bare_host.py).

- the NVIDIA STAND-IN apt repository (NVIDIA's is unreachable here), laid out as NVIDIA's;
- a real registry holding the CPU vLLM image (local_registry.py), pulled by digest with TLS and a login;
- the Hugging Face hub emulator (hf_hub_emulator.py) serving the tiny model under Mistral's id, gated by a token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from local_registry import Registry

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("OCI_VLLM_CACHE", "/var/tmp/oci-vllm"))
MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
REPO_PORT, REGISTRY_PORT, HUB_PORT = 8765, 5043, 8766


def tiny_model() -> Path:
    model = CACHE / "story" / "models" / "tiny-mistral"
    if not (model / "model.safetensors").exists():
        python = CACHE / "vllm-venv" / "bin" / "python3"
        subprocess.run([str(python), str(ROOT / "scripts/tiny_model.py"), str(model)], check=True, capture_output=True)
    return model


def standin_repo(work: Path) -> Path:
    """The NVIDIA stand-in repository laid out as NVIDIA's: <base>/<distro>/x86_64/ (driver) and a flat toolkit repo."""
    repo = CACHE / "story" / "standin-repo"
    script = str(ROOT / "tests/standins/standin-apt-repo.sh")
    built = subprocess.run([script, str(repo)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise RuntimeError("tests/standins/standin-apt-repo.sh failed:\n" + built.stdout[-2000:] + built.stderr[-2000:])
    shutil.copy(repo / "standin-archive-keyring.asc", repo / "3bf863cc.pub")  # the role's default key file name
    www = work / "www"
    for distro in ("ubuntu2204", "ubuntu2404"):
        (www / "cuda" / distro).mkdir(parents=True)
        (www / "cuda" / distro / "x86_64").symlink_to(repo)
    (www / "toolkit").symlink_to(repo)
    return www


def serve_repo(www: Path, gateway: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "http.server", str(REPO_PORT), "--bind", gateway, "--directory", str(www)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_hub(work: Path, gateway: str, token: str, registry: Registry, rate: float | None = None) -> subprocess.Popen:
    """The hub emulator with the tiny model as MODEL, gated: only `token` is granted (read from a file, not argv).
    HTTPS with the registry's certificate (same address, same test CA): the token never crosses a link in clear."""
    granted = work / "granted-token"
    granted.write_text(token)
    argv = [sys.executable, str(ROOT / "tests/functional/hf_hub_emulator.py"), "--host", gateway,
            "--port", str(HUB_PORT), "--cdn-port", str(HUB_PORT + 1), "--repo", "%s=%s" % (MODEL, tiny_model()),
            "--gated-token-file", str(granted),
            "--certfile", str(registry.server_cert), "--keyfile", str(registry.server_key)]  # fmt: skip
    if rate:
        argv += ["--rate", str(rate)]
    hub = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert hub.stdout is not None
    json.loads(hub.stdout.readline())  # the emulator prints its endpoints once it listens
    return hub


def host_vars(gateway: str, registry: Registry, image: str, token: str) -> dict:
    """The roles' variables for a test host: stand-in repositories, no reboot, the CPU image, the hub emulator."""
    return {
        # The cuda source, from the stand-in repository (the ubuntu source: molecule/nvidia_driver_ubuntu).
        "nvidia_driver_source": "cuda",
        "nvidia_driver_cuda_repo_base_url": "http://%s:%d/cuda" % (gateway, REPO_PORT),
        "nvidia_driver_install_kernel_headers": False,  # containers run the build machine's kernel
        "nvidia_driver_reboot_policy": "never",  # containers cannot reboot
        "container_toolkit_repo_url": "http://%s:%d/toolkit" % (gateway, REPO_PORT),
        "container_toolkit_repo_key_url": "http://%s:%d/toolkit/standin-archive-keyring.gpg" % (gateway, REPO_PORT),
        "container_toolkit_repo_keyring": "/etc/apt/keyrings/nvidia-container-toolkit-standin.gpg",
        # The CPU image by digest from the registry; the tiny model under Mistral's id from the hub endpoint.
        "vllm_server_image": image,
        "vllm_server_registry_ca_file": str(registry.ca_file),
        "vllm_server_registry_username": registry.username,
        "vllm_server_registry_password": registry.password,
        "vllm_server_hf_endpoint": "https://%s:%d" % (gateway, HUB_PORT),
        "vllm_server_hf_ca_file": str(registry.ca_file),
        "vllm_server_hf_token": token,
        "vllm_server_model": MODEL,
        "vllm_server_gpus": "none",
        "vllm_server_env": {"VLLM_CPU_KVCACHE_SPACE": 1},
        "vllm_server_enforce_eager": True,
        "vllm_server_max_model_len": 512,
        "vllm_server_wait_timeout": 600,
    }

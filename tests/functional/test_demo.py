"""The `make demo` path for real: CPU vLLM image, tiny model, `oci-vllm deploy -i inventory/demo` on this machine,
then the seed's three calls through `oci-vllm`. Also checks that no secret lands in the runner's artifacts or in
`docker inspect`. Needs the Docker engine (started by scripts/docker-engine.sh) and a few minutes on a cold cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oci_vllm import api

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("OCI_VLLM_CACHE", "/var/tmp/oci-vllm"))
OCI_VLLM = str(Path(sys.executable).parent / "oci-vllm")
SERVED = "mistralai/Mistral-7B-Instruct-v0.2"
FAKE_TOKEN = "hf_OciVllmDemoTestStandInToken4c2e81"
CONTAINER = "oci-vllm-demo"


def _cli(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [OCI_VLLM, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def demo_prereqs():
    subprocess.run([str(ROOT / "scripts/docker-engine.sh")], check=True)
    subprocess.run(
        [str(ROOT / "scripts/vllm-cpu-image.sh")], check=True, env={**os.environ, "OCI_VLLM_CACHE": str(CACHE)}
    )
    model = CACHE / "demo/models/tiny-mistral"
    if not (model / "model.safetensors").is_file():
        subprocess.run(
            [str(CACHE / "vllm-venv/bin/python3"), str(ROOT / "scripts/tiny_model.py"), str(model)], check=True
        )


@pytest.fixture(scope="module")
def deployed(demo_prereqs):
    run = _cli("deploy", "-i", "inventory/demo", "--json", "--keep-artifacts", env={"OCI_VLLM_HF_TOKEN": FAKE_TOKEN})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout)
    yield report, run.stderr
    shutil.rmtree(report.get("private_data_dir", "/nonexistent"), ignore_errors=True)


def _grep(root: str, needle: str) -> list[str]:
    hits = []
    for dirpath, _d, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if needle.encode() in Path(path).read_bytes():
                hits.append(path)
    return hits


def test_deploy_serves_the_model(deployed):
    report, progress = deployed
    assert report["exit_code"] == 0 and report["hosts"]["demo-local"]["state"] == "ok"
    endpoint = report["endpoints"]["demo-local"]
    # The front: HTTPS on 127.0.0.1:8000, verified with the demo's CA, read from the play's custom stats.
    assert endpoint["endpoint"] == "https://127.0.0.1:8000" and endpoint["models"] == [SERVED] and endpoint["ready"]
    assert endpoint["ca_file"] == str(CACHE / "demo/control-node/ca/ca.crt")
    # The GPU roles are skipped on this GPU-less target, and the run says so.
    assert "GPU roles (nvidia_driver, container_toolkit) skipped" in progress
    assert "TASK Health gate - the model is listed and generating" in progress


def test_no_secret_in_artifacts_or_docker_inspect(deployed):
    report, progress = deployed
    api_key = (CACHE / "demo/control-node/api_key").read_text().strip()
    assert len(api_key) >= 32
    private = report["private_data_dir"]
    assert os.path.isdir(os.path.join(private, "artifacts"))
    assert _grep(private, FAKE_TOKEN) == [] and _grep(private, api_key) == []
    assert FAKE_TOKEN not in progress and api_key not in progress
    inspect = subprocess.run(["docker", "inspect", CONTAINER], capture_output=True, text=True, check=True).stdout
    assert FAKE_TOKEN not in inspect and api_key not in inspect
    # ... while the token did reach the host, in its 0600 file.
    token_file = CACHE / "demo/etc/hf_token"
    assert token_file.read_text() == FAKE_TOKEN and (token_file.stat().st_mode & 0o077) == 0


def test_seed_calls(deployed):
    models = _cli("models", "-i", "inventory/demo", "--json")
    assert models.returncode == 0, models.stderr
    assert json.loads(models.stdout)["models"] == [SERVED]

    # complete and chat send the seed's prompt and question by default.
    complete = _cli("complete", "-i", "inventory/demo", "--json")
    assert complete.returncode == 0, complete.stderr
    answer = json.loads(complete.stdout)
    assert answer["prompt"] == api.seed().prompt
    assert answer["model"] == SERVED and answer["response"]["usage"]["completion_tokens"] > 0 and answer["text"]

    chat = _cli("chat", "-i", "inventory/demo", "--json")
    assert chat.returncode == 0, chat.stderr
    answer = json.loads(chat.stdout)
    assert answer["message"] == api.seed().chat_message
    assert answer["response"]["choices"][0]["message"]["role"] == "assistant" and answer["text"]


def test_status_reports_ready(deployed):
    status = _cli("status", "-i", "inventory/demo", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    host = json.loads(status.stdout)["hosts"][0]
    assert (host["host"], host["container_state"], host["ready"], host["served_model"]) == (
        "demo-local",
        "running",
        True,
        SERVED,
    )


def test_wrong_key_and_dead_endpoint_exit_codes(deployed, tmp_path):
    wrong = tmp_path / "key"
    wrong.write_text("not-the-key\n")
    ca = str(CACHE / "demo/control-node/ca/ca.crt")
    run = _cli("models", "--url", "https://127.0.0.1:8000", "--ca-file", ca, "--api-key-file", str(wrong))
    assert run.returncode == 2 and "HTTP 401" in run.stderr
    # Without the demo's CA the certificate is not trusted, and the message says what to give.
    run = _cli("models", "--url", "https://127.0.0.1:8000", "--api-key-file", str(wrong))
    assert run.returncode == 3 and "certificate not trusted" in run.stderr and "--ca-file" in run.stderr
    # Plain HTTP on the front's TLS port is answered with nginx's 400 and nothing else.
    run = _cli("models", "--url", "http://127.0.0.1:8000")
    assert run.returncode == 2 and "HTTP 400" in run.stderr
    run = _cli("models", "--url", "http://127.0.0.1:1")
    assert run.returncode == 3 and "cannot reach" in run.stderr


def test_hosts_table(deployed):
    run = _cli("hosts", "-i", "inventory/demo")
    assert run.returncode == 0 and "demo-local" in run.stdout and "127.0.0.1" in run.stdout


# ---------------------------------------------------------------- faults: the serving endpoint survives every one


def _serving_container() -> tuple[str, str]:
    """(container id, start time) of the demo's vLLM container: unchanged means untouched."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", CONTAINER],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], out[1]


def _still_serves() -> None:
    models = _cli("models", "-i", "inventory/demo", "--json")
    assert models.returncode == 0, models.stdout + models.stderr
    assert json.loads(models.stdout)["models"] == [SERVED]


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        ({"vllm_server_model": ""}, "vllm_server_model='' is not allowed"),
        ({"vllm_server_port": 99999}, "vllm_server_port=99999 is not allowed: an integer from 1 to 65535"),
        # The tiny model has 4 attention heads (scripts/tiny_model.py): 8-way tensor parallelism cannot split them.
        ({"vllm_server_tensor_parallel_size": 8}, "vllm_server_tensor_parallel_size=8"),
        # ... and a 2048-token limit (max_position_embeddings), read from its config.json on the host.
        ({"vllm_server_max_model_len": 4096}, "vllm_server_max_model_len=4096"),
    ],
    ids=["empty-model", "bad-port", "tp-not-dividing-heads", "context-over-the-model-limit"],
)
def test_bad_input_exits_4_and_leaves_the_endpoint_untouched(deployed, extra_vars, expected):
    before = _serving_container()
    run = _cli("deploy", "-i", "inventory/demo", "-e", json.dumps(extra_vars), "--json")
    report = json.loads(run.stdout)
    assert run.returncode == 4, run.stdout[-3000:]
    messages = " ".join(report["invalid"]["demo-local"])
    assert expected in messages, messages
    assert report["hosts"]["demo-local"]["changed"] == 0
    assert _serving_container() == before
    _still_serves()


def test_a_vllm_that_exits_at_start_is_rolled_back(deployed):
    # vLLM refuses --quantization awq on a model without AWQ weights after it has parsed the model (exit 1); the
    # planner cannot see flags passed through vllm_server_extra_args, so this reaches the host.
    before = _serving_container()
    bad = {"vllm_server_extra_args": ["--quantization", "awq"]}
    run = _cli("deploy", "-i", "inventory/demo", "-e", json.dumps(bad))
    assert run.returncode == 2, run.stdout[-3000:]
    assert "Cannot find the config file for awq" in run.stdout  # the new container's log tail
    assert "ROLLED BACK: the previous container" in run.stdout and f"serves {SERVED} again" in run.stdout
    # The same container (not a new one with the old settings) serves again, under its name; nothing left aside.
    assert _serving_container()[0] == before[0]
    _still_serves()
    # This deploy ran without a Hugging Face token: the stored one is kept (removal only by an explicit option).
    assert (CACHE / "demo/etc/hf_token").read_text() == FAKE_TOKEN
    left = subprocess.run(
        ["docker", "ps", "-aq", "-f", f"name=^{CONTAINER}-previous$"], capture_output=True, text=True, check=True
    )
    assert left.stdout.strip() == ""

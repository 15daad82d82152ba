# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Helpers for the _hf_download unit tests: a model folder, the hub emulator on loopback, a fake disk and clock."""

from __future__ import annotations

import collections
import hashlib
import os

from ansible_collections.oci_gpu.vllm.tests.functional.hf_hub_emulator import HubEmulator, Repo

PUBLIC = "mistralai/Mistral-7B-Instruct-v0.2"
GATED = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GRANTED = "hf_granted_unit_token_0001"
NOT_GRANTED = "hf_valid_not_granted_0002"
WEIGHTS = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, an LFS file
DiskUsage = collections.namedtuple("DiskUsage", "total used free")


def make_model_dir(path) -> dict:
    files = {
        "config.json": b'{"architectures": ["MistralForCausalLM"]}',
        "tokenizer.json": b'{"model": {"type": "BPE"}}',
        "model.safetensors": WEIGHTS,
        "pytorch_model.bin": b"pickled" * 100,
        "README.md": b"# card\n",
    }
    for name, data in files.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    return files


def start_hub(model_dir, **kwargs) -> HubEmulator:
    repos = [Repo(PUBLIC, model_dir), Repo(GATED, model_dir, gated=True, granted_tokens={GRANTED})]
    return HubEmulator(repos, host="127.0.0.1", valid_tokens={NOT_GRANTED}, **kwargs).start()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeDisk:
    """shutil.disk_usage stand-in reporting a fixed free size and recording the paths asked."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.paths: list = []

    def __call__(self, path: str) -> DiskUsage:
        self.paths.append(path)
        return DiskUsage(10**13, 10**13 - self.free, self.free)


class FakeClock:
    """sleep() advances now(); `on_sleep` runs at each sleep (e.g. to release a lock)."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 0.0
        self.sleeps: list = []
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))

    def clock(self) -> float:
        return self.now

"""The hub emulator against the real huggingface_hub client (the version in vLLM's image), and our downloader
(plugins/module_utils/_hf_download.py) against the emulator, with the real client reading the cache it fills.

The real client runs in a subprocess so HF_ENDPOINT is read at its import, as in vLLM's container, and the token
travels in HF_TOKEN (never in argv).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_local import ansible_env
from hf_hub_emulator import HubEmulator, Repo

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.76"
PUBLIC = "mistralai/Mistral-7B-Instruct-v0.2"
GATED = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GRANTED = "hf_granted_test_token_1234567890"
NOT_GRANTED = "hf_valid_but_not_granted_0987654321"
WEIGHTS_SIZE = 3 * 1024 * 1024 + 12345


def _load_logic():
    spec = importlib.util.spec_from_file_location("_hf_download", ROOT / "plugins/module_utils/_hf_download.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hfd = _load_logic()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A model folder as a hub repo holds it: weights, configs, tokenizer, plus files vLLM does not load."""
    folder = tmp_path_factory.mktemp("model")
    files = {
        "config.json": json.dumps({"architectures": ["MistralForCausalLM"], "hidden_size": 64}).encode(),
        "generation_config.json": b'{"bos_token_id": 1}',
        "tokenizer.json": b'{"model": {"type": "BPE"}}' * 2000,
        "tokenizer_config.json": b'{"model_max_length": 4096}',
        "chat_template.jinja": b"{% for m in messages %}{{ m.content }}{% endfor %}",
        "model.safetensors": os.urandom(WEIGHTS_SIZE),
        "pytorch_model.bin": os.urandom(4096),
        "README.md": b"# a model card\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def hub(model_dir):
    with HubEmulator(
        [Repo(PUBLIC, str(model_dir)), Repo(GATED, str(model_dir), gated=True, granted_tokens={GRANTED})],
        host=HOST,
        valid_tokens={NOT_GRANTED},
    ) as emulator:
        yield emulator


def real_client(hub: HubEmulator, tmp_path: Path, spec: dict, token: str | None = None, offline: bool = False) -> dict:
    """Run huggingface_hub in a subprocess; returns its result or the exception it raised."""
    script = r"""
import hashlib, json, os, sys
spec = json.loads(sys.argv[1])
import huggingface_hub as hh
def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
try:
    if spec["call"] == "snapshot_download":
        path = hh.snapshot_download(spec["repo"], cache_dir=spec["cache"], revision=spec.get("revision"),
                                    allow_patterns=spec.get("allow"), local_files_only=spec.get("offline", False))
        files = {}
        for root, _dirs, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                files[os.path.relpath(full, path)] = digest(full)
        print(json.dumps({"path": path, "files": files}))
    else:
        path = hh.hf_hub_download(spec["repo"], spec["filename"], cache_dir=spec["cache"],
                                  revision=spec.get("revision"), local_files_only=spec.get("offline", False))
        print(json.dumps({"path": path, "sha256": digest(path)}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                      "message": str(exc)}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "HOME"} | {
        "HOME": str(tmp_path / "home"),
        "HF_HOME": str(tmp_path / "hf_home_client"),
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ETAG_TIMEOUT": "30",
    }
    if token:
        env["HF_TOKEN"] = token
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_digests(model_dir: Path, names) -> dict:
    return {name: sha256_of(model_dir / name) for name in names}


# -- (a) the real client against the emulator ----------------------------------------------------------------------
def test_real_client_downloads_public_repo(hub, model_dir, tmp_path):
    got = real_client(hub, tmp_path, {"call": "snapshot_download", "repo": PUBLIC, "cache": str(tmp_path / "c")})
    assert "error" not in got, got
    repo_files = {p.name for p in model_dir.iterdir()}
    assert set(got["files"]) == repo_files | {".gitattributes"}
    assert {k: v for k, v in got["files"].items() if k != ".gitattributes"} == source_digests(model_dir, repo_files)
    # The weights came from the CDN origin through the hub's redirect, without the Authorization header.
    assert hub.requests_matching("GET", "/repos/lfs/") == 2  # model.safetensors and pytorch_model.bin
    assert hub.requests_matching("HEAD", "/resolve/") == len(repo_files) + 1
    assert hub.cdn_authorization_seen == 0


def test_real_client_downloads_gated_repo_with_token(hub, model_dir, tmp_path):
    spec = {"call": "snapshot_download", "repo": GATED, "cache": str(tmp_path / "c"), "allow": ["*.safetensors"]}
    got = real_client(hub, tmp_path, spec, token=GRANTED)
    assert got.get("files") == source_digests(model_dir, ["model.safetensors"]), got
    assert hub.cdn_authorization_seen == 0


@pytest.mark.parametrize(
    ("repo", "revision", "token", "error", "status"),
    [
        (GATED, None, None, "GatedRepoError", "401"),
        (GATED, None, NOT_GRANTED, "GatedRepoError", "403"),
        ("mistralai/No-Such-Model", None, None, "RepositoryNotFoundError", "401"),
        ("mistralai/No-Such-Model", None, NOT_GRANTED, "RepositoryNotFoundError", "404"),
        (PUBLIC, "v9.9", None, "RevisionNotFoundError", "404"),
    ],
)
@pytest.mark.parametrize("call", ["snapshot_download", "hf_hub_download"])
def test_real_client_raises_its_own_errors(hub, tmp_path, call, repo, revision, token, error, status):
    spec = {"call": call, "repo": repo, "revision": revision, "filename": "config.json", "cache": str(tmp_path / "c")}
    got = real_client(hub, tmp_path, spec, token=token)
    assert got.get("error") == error, got
    assert got["message"].startswith(f"{status} Client Error"), got["message"]


def test_real_client_sees_an_invalid_token(hub, tmp_path):
    spec = {"call": "hf_hub_download", "repo": PUBLIC, "filename": "config.json", "cache": str(tmp_path / "c")}
    got = real_client(hub, tmp_path, spec, token="hf_unknown_to_the_hub")
    assert got.get("error") == "HfHubHTTPError" and "Invalid credentials in Authorization header" in got["message"]


# -- (b) our downloader fills a cache the real client reads offline ------------------------------------------------
def token_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "hf_token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return str(path)


def test_our_cache_is_read_by_the_real_client_offline(hub, model_dir, tmp_path):
    hf_home = tmp_path / "hf"
    result = hfd.download_model(GATED, str(hf_home), endpoint=hub.endpoint, token_file=token_file(tmp_path, GRANTED))
    loaded = ["chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
              "tokenizer_config.json"]  # fmt: skip
    assert [f["name"] for f in result["files"]] == loaded  # no README, no .gitattributes, no .bin next to safetensors
    assert result["changed"] and result["bytes_downloaded"] == result["bytes_total"] == sum(
        (model_dir / n).stat().st_size for n in loaded
    )
    assert GRANTED not in json.dumps(result)
    assert hub.cdn_authorization_seen == 0

    cache = str(hf_home / "hub")
    snap = real_client(hub, tmp_path, {"call": "snapshot_download", "repo": GATED, "cache": cache}, offline=True)
    assert snap.get("path") == result["snapshot_path"], snap
    assert snap["files"] == source_digests(model_dir, loaded)
    one = real_client(
        hub, tmp_path, {"call": "hf_hub_download", "repo": GATED, "filename": "model.safetensors", "cache": cache},
        offline=True,
    )  # fmt: skip
    assert one.get("sha256") == sha256_of(model_dir / "model.safetensors"), one
    assert Path(one["path"]).is_symlink() and not os.path.isabs(os.readlink(one["path"]))

    # Idempotent: a second run asks for no file body and changes nothing.
    hub.reset_counters()
    again = hfd.download_model(GATED, str(hf_home), endpoint=hub.endpoint, token_file=token_file(tmp_path, GRANTED))
    assert not again["changed"] and again["bytes_downloaded"] == 0
    assert hub.requests_matching("GET", "/resolve/") == 0 and hub.requests_matching("GET", "/repos/lfs/") == 0


def test_the_real_client_online_finds_our_blobs(hub, model_dir, tmp_path):
    """The blob names (etags) are the hub's: the real client online reuses our files instead of downloading."""
    hf_home = tmp_path / "hf"
    hfd.download_model(PUBLIC, str(hf_home), endpoint=hub.endpoint)
    hub.reset_counters()
    got = real_client(
        hub, tmp_path, {"call": "snapshot_download", "repo": PUBLIC, "cache": str(hf_home / "hub"), "allow": ["*.json"]}
    )  # fmt: skip
    assert "error" not in got
    assert hub.total_body_bytes() == 0


@pytest.mark.parametrize(
    ("repo", "revision", "token", "error", "words"),
    [
        (GATED, "main", None, "Unauthorized", "is gated and needs a token"),
        (GATED, "main", NOT_GRANTED, "AccessNotGranted", "Request access on"),
        (GATED, "main", "hf_unknown_to_the_hub", "Unauthorized", "invalid or expired"),
        ("mistralai/No-Such-Model", "main", NOT_GRANTED, "NotFound", "No repository"),
        ("mistralai/No-Such-Model", "main", None, "Unauthorized", "was not found or needs a token"),
        (PUBLIC, "v9.9", None, "NotFound", "no revision by that name"),
    ],
)
def test_our_errors_against_the_emulator(hub, tmp_path, repo, revision, token, error, words):
    with pytest.raises(hfd.HfDownloadError) as caught:
        hfd.download_model(
            repo, str(tmp_path / "hf"), revision=revision, endpoint=hub.endpoint,
            token_file=token_file(tmp_path, token) if token else None, retries=0,
        )  # fmt: skip
    assert type(caught.value).__name__ == error
    assert words in caught.value.msg and repo in caught.value.msg and hub.endpoint in caught.value.msg
    if token:
        assert token not in caught.value.msg
    assert not (tmp_path / "hf" / "hub").exists()  # nothing changed on the host


# -- (c) resume ----------------------------------------------------------------------------------------------------
def test_a_second_run_resumes_a_dropped_download(hub, tmp_path):
    hf_home = tmp_path / "hf"
    hub.drop_after_bytes = 1_000_000
    with pytest.raises(hfd.HubUnavailable) as caught:
        hfd.download_model(PUBLIC, str(hf_home), endpoint=hub.endpoint, retries=0, allow_patterns=["*.safetensors"])
    assert "kept" in caught.value.msg and hub.drops == 1
    partial = list((hf_home / "hub").rglob("*.incomplete"))
    assert len(partial) == 1 and partial[0].stat().st_size == 1_000_000

    hub.reset_counters()
    result = hfd.download_model(PUBLIC, str(hf_home), endpoint=hub.endpoint, allow_patterns=["*.safetensors"])
    print(f"second run fetched {hub.total_body_bytes()} of {result['bytes_total']} bytes")
    assert result["bytes_downloaded"] == hub.total_body_bytes() == WEIGHTS_SIZE - 1_000_000
    assert [r for _p, r in hub.ranges] == ["bytes=1000000-"]
    assert not list((hf_home / "hub").rglob("*.incomplete"))


def test_one_run_resumes_after_a_drop(hub, model_dir, tmp_path):
    hub.drop_after_bytes = 2_000_000
    result = hfd.download_model(
        PUBLIC, str(tmp_path / "hf"), endpoint=hub.endpoint, allow_patterns=["*.safetensors"], retries=2,
        sleep=lambda s: None,
    )  # fmt: skip
    assert hub.drops == 1 and hub.total_body_bytes() == result["bytes_downloaded"] == WEIGHTS_SIZE
    blob = Path(result["snapshot_path"], "model.safetensors").resolve()
    assert sha256_of(blob) == sha256_of(model_dir / "model.safetensors")


# -- (d) rate limit ------------------------------------------------------------------------------------------------
def test_the_rate_limit_is_honoured(hub, tmp_path):
    hub.link.rate = rate = 4_000_000  # bytes/s
    started = time.monotonic()
    result = hfd.download_model(PUBLIC, str(tmp_path / "hf"), endpoint=hub.endpoint, allow_patterns=["*.safetensors"])
    elapsed = time.monotonic() - started
    print(f"measured {result['bytes_downloaded'] / elapsed / 1e6:.2f} MB/s against a limit of {rate / 1e6:.2f} MB/s")
    # Only a lower bound (the emulator sleeps, so a run cannot be faster than the link): half, to stay far from flakes.
    assert elapsed >= 0.5 * result["bytes_downloaded"] / rate


# -- the module through Ansible --------------------------------------------------------------------------------------
def test_the_module_in_check_mode_then_for_real(hub, tmp_path):
    hf_home = tmp_path / "hf"
    args = f"repo_id={GATED} hf_home={hf_home} endpoint={hub.endpoint} token_file={token_file(tmp_path, GRANTED)}"
    env = ansible_env(tmp_path, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    ansible = str(Path(sys.executable).with_name("ansible"))
    base = [
        ansible,
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]

    def run(*extra):
        done = subprocess.run(
            [*base, *extra, "-m", "oci_gpu.vllm.hf_model_download", "-a", args, "-vvv"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert GRANTED not in done.stdout + done.stderr
        return json.loads(done.stdout[done.stdout.index("{") :])["plays"][0]["tasks"][0]["hosts"]["localhost"]

    checked = run("--check")
    assert checked["changed"] and checked["bytes_missing"] == checked["bytes_total"], checked
    assert not (hf_home / "hub").exists()
    done = run()
    assert done["changed"] and done["bytes_downloaded"] == done["bytes_total"], done
    assert not run()["changed"]

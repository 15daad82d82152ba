# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""_hf_download logic against the hub emulator on loopback, with a fake disk and clock."""

from __future__ import annotations

import fcntl
import os

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils._hf_download import (
    DEFAULT_ALLOW_PATTERNS,
    LOCK_NAME,
    AccessNotGranted,
    HubUnavailable,
    IntegrityError,
    InvalidArgument,
    LockTimeout,
    NotEnoughDisk,
    NotFound,
    TokenFileError,
    Unauthorized,
    download_model,
    make_plan,
    select_files,
    storage_folder,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.hf_download_fakes import (
    GATED,
    GRANTED,
    NOT_GRANTED,
    PUBLIC,
    WEIGHTS,
    FakeClock,
    FakeDisk,
    make_model_dir,
    sha256,
    start_hub,
)


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    make_model_dir(str(folder))
    return str(folder)


@pytest.fixture
def hub(model_dir):
    emulator = start_hub(model_dir)
    yield emulator
    emulator.stop()


def token_file(tmp_path, token):
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return str(path)


def run(hub, tmp_path, repo=PUBLIC, **kwargs):
    kwargs.setdefault("sleep", FakeClock().sleep)
    return download_model(repo, str(tmp_path / "hf"), endpoint=hub.endpoint, **kwargs)


def blob_of(tmp_path, repo, etag):
    return os.path.join(storage_folder(str(tmp_path / "hf"), repo), "blobs", etag)


# -- plan ------------------------------------------------------------------------------------------------------------
def test_default_selection_is_what_vllm_loads():
    names = [".gitattributes", "README.md", "config.json", "model-00001-of-00002.safetensors",
             "model-00002-of-00002.safetensors", "model.safetensors.index.json", "pytorch_model-00001-of-00002.bin",
             "pytorch_model.bin.index.json", "tokenizer.model", "tokenizer_config.json", "chat_template.jinja",
             "original/consolidated.pth"]  # fmt: skip
    assert select_files(names, DEFAULT_ALLOW_PATTERNS) == [
        "chat_template.jinja", "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "tokenizer.model", "tokenizer_config.json",
    ]  # fmt: skip


def test_pickled_weights_are_kept_when_a_repo_has_no_safetensors():
    assert select_files(["config.json", "pytorch_model.bin", "README.md"], ["*.bin", "config.json"]) == [
        "config.json",
        "pytorch_model.bin",
    ]


def test_plan_names_blobs_by_the_hubs_etags():
    info = {
        "sha": "a" * 40,
        "siblings": [
            {"rfilename": "config.json", "size": 10, "blobId": "b" * 40},
            {
                "rfilename": "model.safetensors",
                "size": 99,
                "blobId": "c" * 40,
                "lfs": {"size": 99, "sha256": "d" * 64, "pointerSize": 130},
            },
        ],
    }
    plan = make_plan(info, PUBLIC, "main", ["*"])
    assert [(f.name, f.size, f.etag) for f in plan.files] == [
        ("config.json", 10, "b" * 40),
        ("model.safetensors", 99, "d" * 64),
    ]
    with pytest.raises(NotFound, match=r"No file of .* matches allow_patterns \['\*.gguf'\]"):
        make_plan(info, PUBLIC, "main", ["*.gguf"])
    with pytest.raises(HubUnavailable, match="lacks file sizes"):
        make_plan({"sha": "a" * 40, "siblings": [{"rfilename": "x"}]}, PUBLIC, "main", ["*"])


# -- access errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("repo", "revision", "token", "error", "words"),
    [
        (GATED, "main", None, Unauthorized, "is gated and needs a token"),
        (GATED, "main", "hf_not_a_real_token_xyz", Unauthorized, "invalid or expired"),
        (GATED, "main", NOT_GRANTED, AccessNotGranted, "Request access on http"),
        ("mistralai/Nope", "main", NOT_GRANTED, NotFound, "No repository mistralai/Nope on"),
        (PUBLIC, "v0.9", None, NotFound, "no revision by that name"),
    ],
)
def test_access_errors_say_what_to_do_without_the_token(hub, tmp_path, repo, revision, token, error, words):
    tf = token_file(tmp_path, token) if token else None
    with pytest.raises(error) as caught:
        run(hub, tmp_path, repo=repo, revision=revision, token_file=tf, retries=0)
    assert words in caught.value.msg and hub.endpoint in caught.value.msg and repo in caught.value.msg
    if token:
        assert token not in caught.value.msg and token not in repr(caught.value.result)
        if error is not NotFound:
            assert tf in caught.value.msg  # names where the token came from
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("endpoint", ["http://10.0.0.5:8080", "http://hub.example", "http://[fe80::1]"])
def test_a_token_is_never_sent_over_plain_http_off_the_loopback(tmp_path, endpoint):
    with pytest.raises(InvalidArgument, match="plain HTTP off the loopback") as err:
        download_model(PUBLIC, str(tmp_path / "hf"), endpoint=endpoint, token=GRANTED, sleep=FakeClock().sleep)
    assert GRANTED not in err.value.msg


def test_token_file_problems_and_bad_arguments_fail_before_any_request(hub, tmp_path):
    with pytest.raises(TokenFileError, match=r"Cannot read token_file .*/missing"):
        run(hub, tmp_path, token_file=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenFileError, match="is empty"):
        run(hub, tmp_path, token_file=str(tmp_path / "empty"))
    with pytest.raises(InvalidArgument, match="repo_id 'mistral' is not ORG/NAME"):
        run(hub, tmp_path, repo="mistral")
    with pytest.raises(InvalidArgument, match="endpoint 'ftp://x' is not an http"):
        download_model(PUBLIC, str(tmp_path / "hf"), endpoint="ftp://x")
    assert not hub.requests


# -- disk ------------------------------------------------------------------------------------------------------------
def test_disk_check_counts_missing_bytes_and_the_reserve(hub, tmp_path):
    disk = FakeDisk(free=len(WEIGHTS) + 500)
    with pytest.raises(NotEnoughDisk) as caught:
        run(hub, tmp_path, allow_patterns=["*.safetensors"], reserve_bytes=1000, disk_usage=disk)
    assert "needs 0.00 GB (0.00 GB of model files still to download + 0.00 GB reserve)" in caught.value.msg
    assert f"but {tmp_path} has 0.00 GB free" in caught.value.msg
    assert caught.value.result == {"bytes_missing": len(WEIGHTS), "bytes_free": len(WEIGHTS) + 500}
    assert not hub.requests_matching("GET", "/repos/lfs/") and not (tmp_path / "hf").exists()

    # What an .incomplete file already holds is not needed again.
    incomplete = blob_of(tmp_path, PUBLIC, sha256(WEIGHTS)) + ".incomplete"
    os.makedirs(os.path.dirname(incomplete))
    with open(incomplete, "wb") as f:
        f.write(WEIGHTS[:600])
    result = run(hub, tmp_path, allow_patterns=["*.safetensors"], reserve_bytes=1000, disk_usage=disk)
    assert result["bytes_downloaded"] == len(WEIGHTS) - 600


# -- download, resume, integrity, idempotence ---------------------------------------------------------------------
def test_download_fills_the_huggingface_cache_layout(hub, tmp_path):
    result = run(hub, tmp_path, GATED, token_file=token_file(tmp_path, GRANTED))
    storage = storage_folder(str(tmp_path / "hf"), GATED)
    assert [f["name"] for f in result["files"]] == ["config.json", "model.safetensors", "tokenizer.json"]
    assert result["changed"] and result["bytes_downloaded"] == result["bytes_total"]
    with open(os.path.join(storage, "refs", "main")) as f:
        assert f.read() == result["commit"]  # no newline
    link = os.path.join(result["snapshot_path"], "model.safetensors")
    assert os.readlink(link) == os.path.join("..", "..", "blobs", sha256(WEIGHTS))
    with open(link, "rb") as f:
        assert f.read() == WEIGHTS
    assert hub.cdn_authorization_seen == 0  # the token stayed on the hub's origin
    assert os.path.exists(os.path.join(storage, "..", ".locks", os.path.basename(storage), LOCK_NAME))


def test_a_complete_cache_asks_for_no_file_body(hub, tmp_path):
    run(hub, tmp_path)
    hub.reset_counters()
    again = run(hub, tmp_path)
    assert not again["changed"] and again["bytes_downloaded"] == 0
    assert hub.total_body_bytes() == 0 and not hub.requests_matching("HEAD", "/resolve/")


def test_resume_from_an_incomplete_file_with_a_range(hub, tmp_path):
    incomplete = blob_of(tmp_path, PUBLIC, sha256(WEIGHTS)) + ".incomplete"
    os.makedirs(os.path.dirname(incomplete))
    with open(incomplete, "wb") as f:
        f.write(WEIGHTS[:300000])
    result = run(hub, tmp_path, allow_patterns=["model.safetensors"])
    assert [r for _p, r in hub.ranges] == ["bytes=300000-"]
    assert result["bytes_downloaded"] == hub.total_body_bytes() == len(WEIGHTS) - 300000
    with open(os.path.join(result["snapshot_path"], "model.safetensors"), "rb") as f:
        assert f.read() == WEIGHTS
    assert not os.path.exists(incomplete)


def test_a_sha256_mismatch_is_refused_and_discarded(hub, tmp_path):
    blob = blob_of(tmp_path, PUBLIC, sha256(WEIGHTS))
    os.makedirs(os.path.dirname(blob))
    with open(blob + ".incomplete", "wb") as f:
        f.write(b"\0" * 1000)  # not the file's first bytes: the resumed whole has the right size, not the hash
    with pytest.raises(IntegrityError, match=f"model.safetensors of {PUBLIC} .* sha256 {sha256(WEIGHTS)}"):
        run(hub, tmp_path, allow_patterns=["model.safetensors"])
    assert not os.path.exists(blob) and not os.path.exists(blob + ".incomplete")
    snapshots = os.path.join(storage_folder(str(tmp_path / "hf"), PUBLIC), "snapshots")
    assert not os.path.exists(snapshots)
    assert run(hub, tmp_path, allow_patterns=["model.safetensors"])["changed"]  # a re-run starts afresh


def test_check_mode_plans_and_checks_without_writing(hub, tmp_path):
    result = run(hub, tmp_path, GATED, token_file=token_file(tmp_path, GRANTED), check_mode=True)
    assert result["changed"] and result["bytes_missing"] == result["bytes_total"] and result["bytes_downloaded"] == 0
    assert not (tmp_path / "hf").exists() and hub.total_body_bytes() == 0
    with pytest.raises(AccessNotGranted):
        run(hub, tmp_path, GATED, token_file=token_file(tmp_path, NOT_GRANTED), check_mode=True)


# -- retries ---------------------------------------------------------------------------------------------------------
def test_5xx_and_429_are_retried_with_back_off(hub, tmp_path):
    hub.fail_next = [503, 429, 502]
    clock = FakeClock()
    result = run(hub, tmp_path, allow_patterns=["config.json"], sleep=clock.sleep)
    assert result["changed"]
    assert clock.sleeps == [1.0, 1.0, 4.0]  # 2**0, Retry-After: 1, 2**2


def test_an_unreachable_endpoint_fails_after_the_retries(tmp_path):
    clock = FakeClock()
    with pytest.raises(HubUnavailable, match=r"did not answer for .* after 3 attempts \(last: ConnectionRefusedError"):
        download_model(PUBLIC, str(tmp_path / "hf"), endpoint="http://127.0.0.1:9", retries=2, sleep=clock.sleep)
    assert clock.sleeps == [1.0, 2.0]


def test_an_unreachable_endpoint_is_survived_with_a_complete_copy_only(hub, tmp_path):
    first = run(hub, tmp_path)
    hf_home, down = str(tmp_path / "hf"), "http://127.0.0.1:9"
    kept = download_model(PUBLIC, hf_home, endpoint=down, retries=0, sleep=FakeClock().sleep)
    assert not kept["changed"] and kept["commit"] == first["commit"] and "did not answer" in kept["offline"]
    assert kept["snapshot_path"] == first["snapshot_path"]
    # Another revision was never completed; a file of the kept one shrinking (or going) is not a complete copy.
    with pytest.raises(HubUnavailable):
        download_model(PUBLIC, hf_home, revision="v2", endpoint=down, retries=0, sleep=FakeClock().sleep)
    os.truncate(os.path.join(first["snapshot_path"], "model.safetensors"), 10)
    with pytest.raises(HubUnavailable):
        download_model(PUBLIC, hf_home, endpoint=down, retries=0, sleep=FakeClock().sleep)


# -- the lock --------------------------------------------------------------------------------------------------------
def hold_lock(tmp_path, repo=PUBLIC):
    storage = storage_folder(str(tmp_path / "hf"), repo)
    path = os.path.join(os.path.dirname(storage), ".locks", os.path.basename(storage), LOCK_NAME)
    os.makedirs(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_second_downloader_waits_for_the_lock_then_finds_the_work_done(hub, tmp_path):
    fd = hold_lock(tmp_path)
    first = {}

    def release_after_first_finishes(n):
        if n == 3:  # the "first" downloader finishes while we wait: it fills the cache, then releases its lock
            fcntl.flock(fd, fcntl.LOCK_UN)
            first.update(run(hub, tmp_path, allow_patterns=["config.json"]))

    clock = FakeClock(release_after_first_finishes)
    second = download_model(
        PUBLIC, str(tmp_path / "hf"), endpoint=hub.endpoint, allow_patterns=["config.json"],
        sleep=clock.sleep, clock=clock.clock,
    )  # fmt: skip
    os.close(fd)
    assert len(clock.sleeps) == 3 and first["changed"]
    assert second["bytes_downloaded"] == 0 and not second["changed"]


def test_lock_timeout(hub, tmp_path):
    fd = hold_lock(tmp_path)
    clock = FakeClock()
    with pytest.raises(LockTimeout, match=r"held .* for more than 2 s"):
        run(hub, tmp_path, lock_timeout=2, sleep=clock.sleep, clock=clock.clock)
    os.close(fd)
    assert clock.sleeps == [0.5] * 4

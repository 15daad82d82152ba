# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Download a model from a Hugging Face hub endpoint into the huggingface_hub cache layout; logic of the
oci_gpu.vllm.hf_model_download module.

Runs on the target host with the Python standard library only, so vLLM's container can then start offline
(HF_HUB_OFFLINE=1) from the host's cache mounted as HF_HOME. The cache is the one huggingface_hub itself writes
(file_download.py `_hf_hub_download_to_cache_dir`): `<HF_HOME>/hub/models--{org}--{name}/` with `blobs/<etag>`,
`snapshots/<commit>/<file>` as relative symlinks to the blobs and `refs/<revision>` holding the commit sha (no newline,
as `_cache_commit_hash_for_specific_revision` writes it). The etag is the file's git blob sha1, or its sha256 for an
LFS file, as the hub's `X-Linked-Etag` / `ETag` headers give it.

Every failure is a HfDownloadError subclass with a message naming the repo, the endpoint and what to do; nothing here
knows about AnsibleModule. The token is read from a file, sent only to the endpoint's own origin (never to the
CDN a large file redirects to) and never appears in a message or a result.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import functools
import hashlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import ssl
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote, urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 5
# What vLLM loads from a Hugging Face repo: weights (safetensors, and pickled weights only when a repo has no
# safetensors), the safetensors index, configs, tokenizer files, chat templates, and Mistral's own format files.
DEFAULT_ALLOW_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.pt",
    "*.pth",
    "config.json",
    "generation_config.json",
    "params.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tekken.json",
    "*.model",
    "chat_template*",
)
# vLLM downloads the first weight format the repo has in its allow_patterns order ["*.safetensors", "*.bin"]
# (vllm/model_executor/model_loader/default_loader.py `_prepare_weights`, weight_utils.py `download_weights_from_hf`:
# "Use the first pattern found in the HF repo's files"), so pickled weights next to safetensors are never loaded.
PICKLED_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth")
LOCK_NAME = "oci_gpu.vllm.download.lock"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 1 << 20
_RETRY_STATUSES = (429, 500, 502, 503, 504)
_MAX_BACKOFF = 30.0
# A dropped connection or a timeout, while connecting or while reading a body.
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class HfDownloadError(Exception):
    """Base of every failure; `result` holds what is known so far (commit, files...)."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


class InvalidArgument(HfDownloadError):
    """An option value can never work; raised before any request."""


class TokenFileError(HfDownloadError):
    """The token file cannot be read or is empty."""


class Unauthorized(HfDownloadError):
    """401: no token where one is needed, or the token is invalid or expired."""


class AccessNotGranted(HfDownloadError):
    """403: the token is valid but not granted access to the gated repository."""


class NotFound(HfDownloadError):
    """404: no such repository, revision or file."""


class HubUnavailable(HfDownloadError):
    """Connection errors, timeouts or 429/5xx answers that retries did not get past."""


class NotEnoughDisk(HfDownloadError):
    """The cache's filesystem lacks room for the missing files plus the reserve."""


class IntegrityError(HfDownloadError):
    """A downloaded file's size or hash differs from what the hub announced."""


class LockTimeout(HfDownloadError):
    """Another download of the same repository held the lock for too long."""


class RangeNotSatisfiable(HfDownloadError):
    """416: a partial file is past the end of the file the server has."""


class RemoteFile:
    """One file of the planned snapshot: its blob name (etag) and the hash that verifies it."""

    def __init__(self, name: str, size: int, git_oid: str, sha256: Optional[str]) -> None:
        self.name = name
        self.size = size
        self.git_oid = git_oid
        self.sha256 = sha256  # LFS files only
        self.etag = sha256 or git_oid

    def __repr__(self) -> str:
        return f"RemoteFile({self.name!r}, {self.size})"


class Plan:
    def __init__(self, repo_id: str, revision: str, commit: str, files: List[RemoteFile]) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.commit = commit
        self.files = files

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _HubRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects but keeps the Authorization header on the hub's own origin, as huggingface_hub does
    (utils/_http.py `_is_same_or_hub_host`): a large file redirects to a signed CDN URL that must not get the token."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        if req.get_method() == "HEAD":  # urllib turns a redirected HEAD into a GET of the whole body
            new.method = "HEAD"
        if _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def build_opener(ca_file: Optional[str] = None, ca_data: Optional[str] = None) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=ca_file or None, cadata=ca_data or None)
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _HubRedirectHandler())


class HubClient:
    """HTTP to one hub endpoint, with retries and back-off, hub errors mapped to domain exceptions."""

    def __init__(
        self,
        endpoint: str,
        token: Optional[str] = None,
        token_source: str = "",
        ca_file: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        opener: Optional[urllib.request.OpenerDirector] = None,
        ca_data: Optional[str] = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.token_source = token_source
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self.opener = opener or build_opener(ca_file, ca_data)

    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        headers = {"User-Agent": "oci_gpu.vllm-hf_model_download", "Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def backoff(self, attempt: int, retry_after: Optional[str] = None) -> None:
        delay = min(2.0**attempt, _MAX_BACKOFF)
        if retry_after and retry_after.strip().isdigit():
            delay = min(float(retry_after.strip()), _MAX_BACKOFF)
        self.sleep(delay)

    def open(self, url: str, repo_id: str, method: str = "GET", headers: Optional[Dict[str, str]] = None) -> Any:
        """Response of a successful request (caller closes it), retrying connection errors, 429 and 5xx."""
        last = ""
        for attempt in range(self.retries + 1):
            # validate() allows only http(s) endpoints
            request = urllib.request.Request(url, headers=self._headers(headers), method=method)  # noqa: S310
            try:
                return self.opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as err:
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if err.code not in _RETRY_STATUSES:
                    raise self._http_error(err, repo_id) from None
                last = f"HTTP {err.code}"
                err.close()
            except _NETWORK_ERRORS as err:  # URLError is an OSError
                retry_after = None
                last = _describe(err)
            if attempt < self.retries:
                self.backoff(attempt, retry_after)
        raise HubUnavailable(
            f"{self.endpoint} did not answer for {repo_id} after {self.retries + 1} attempts (last: {last}). Check "
            "that the host reaches the endpoint (proxy, firewall, DNS) and retry.",
        )

    def _http_error(self, err: urllib.error.HTTPError, repo_id: str) -> HfDownloadError:
        code = err.headers.get("X-Error-Code", "") if err.headers else ""
        server = (err.headers.get("X-Error-Message", "") if err.headers else "") or err.reason or ""
        err.close()
        page = f"{self.endpoint}/{repo_id}"
        where = f"{repo_id} on {self.endpoint}"
        if err.code == 401:
            if self.token:
                return Unauthorized(
                    f"{self.endpoint} refused the token from {self.token_source} for {repo_id} (401: {server}). "
                    "The token is invalid or expired: create a read token on the hub's settings page "
                    "(Access Tokens) and put it in the token file."
                )
            if code == "GatedRepo":
                return Unauthorized(
                    f"{where} is gated and needs a token (401: {server}). Request access on {page}, then set "
                    "token_file to a file holding a read token of the account that was granted access."
                )
            return Unauthorized(
                f"{where} was not found or needs a token (401: {server}). Check the repo id; if it is private or "
                "gated, set token_file to a file holding a read token with access to it."
            )
        if err.code == 403:
            if code == "GatedRepo":
                return AccessNotGranted(
                    f"The token from {self.token_source} is valid but not granted access to the gated repository "
                    f"{where} (403: {server}). Request access on {page} with the token's account, wait for the "
                    "approval, then retry."
                )
            return AccessNotGranted(
                f"The token from {self.token_source or '(no token)'} may not read {where} (403: {server}). Use a "
                "token with read permission on this repository."
            )
        if err.code == 404:
            if code == "RevisionNotFound":
                return NotFound(f"{repo_id} has no revision by that name on {self.endpoint} (404: {server}).")
            if code == "EntryNotFound":
                return NotFound(f"A file of {where} was not found (404: {server}).")
            return NotFound(f"No repository {where} (404: {server}). Check the repo id and the endpoint.")
        if err.code == 416:
            return RangeNotSatisfiable(f"{self.endpoint} answered 416 to a resumed download of {repo_id}.")
        return HubUnavailable(f"{self.endpoint} answered HTTP {err.code} for {repo_id}: {server}")

    def model_info(self, repo_id: str, revision: str) -> Dict[str, Any]:
        """`GET /api/models/{repo}/revision/{rev}?blobs=true`: commit sha and files with sizes and hashes, as
        huggingface_hub's `HfApi.model_info(files_metadata=True)` asks."""
        url = f"{self.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}?blobs=true"
        response = self.open(url, repo_id)
        try:
            return json.loads(response.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise HubUnavailable(
                f"{self.endpoint} answered model info for {repo_id} with something that is not JSON ({err}): is "
                "the endpoint a Hugging Face hub?"
            ) from None
        finally:
            response.close()

    def file_url(self, repo_id: str, commit: str, name: str) -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{commit}/{quote(name)}"

    def probe(self, repo_id: str, commit: str, name: str) -> None:
        """HEAD one file: the hub checks access to a gated repo's files, not to its metadata."""
        self.open(self.file_url(repo_id, commit, name), repo_id, method="HEAD").close()


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return f"{type(err.reason).__name__}: {err.reason}"
    return f"{type(err).__name__}: {err}"


def select_files(names: Iterable[str], allow_patterns: Iterable[str]) -> List[str]:
    """Names matching any pattern (fnmatch, `*` crossing `/`, like huggingface_hub's `filter_repo_objects`), without
    pickled weights when the selection has safetensors (vLLM's rule)."""
    patterns = list(allow_patterns)
    chosen = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    if any(n.endswith(".safetensors") for n in chosen):
        chosen = [n for n in chosen if not any(fnmatch.fnmatch(n, p) for p in PICKLED_WEIGHT_PATTERNS)]
    return sorted(chosen)


def make_plan(info: Dict[str, Any], repo_id: str, revision: str, allow_patterns: Iterable[str]) -> Plan:
    commit = info.get("sha")
    siblings = info.get("siblings")
    if not isinstance(commit, str) or not _COMMIT.match(commit) or not isinstance(siblings, list):
        raise HubUnavailable(f"The model info of {repo_id} lacks a commit sha or its file list: is the endpoint a hub?")
    by_name: Dict[str, RemoteFile] = {}
    for s in siblings:
        lfs = s.get("lfs") or {}
        if "size" not in s or "blobId" not in s:
            raise HubUnavailable(f"The model info of {repo_id} lacks file sizes and blob ids (asked with blobs=true).")
        by_name[s["rfilename"]] = RemoteFile(s["rfilename"], int(s["size"]), s["blobId"], lfs.get("sha256"))
    names = select_files(by_name, allow_patterns)
    if not names:
        raise NotFound(
            f"No file of {repo_id} at {revision} matches allow_patterns {list(allow_patterns)}; its files are: "
            f"{', '.join(sorted(by_name)[:20])}."
        )
    return Plan(repo_id, revision, commit, [by_name[n] for n in names])


def storage_folder(hf_home: str, repo_id: str) -> str:
    # huggingface_hub's `repo_folder_name` (file_download.py): models--{org}--{name} under <HF_HOME>/hub.
    return os.path.join(hf_home, "hub", "models--" + repo_id.replace("/", "--"))


def _blob_path(storage: str, f: RemoteFile) -> str:
    return os.path.join(storage, "blobs", f.etag)


def _pointer_path(storage: str, commit: str, f: RemoteFile) -> str:
    return os.path.join(storage, "snapshots", commit, *f.name.split("/"))


def _size_or(path: str, default: int) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return default


def missing_bytes(storage: str, plan: Plan) -> Tuple[List[RemoteFile], int]:
    """Files whose blob is not complete yet, and the bytes still to fetch (minus partial `.incomplete` files)."""
    missing = []
    to_fetch = 0
    for f in plan.files:
        if _size_or(_blob_path(storage, f), -1) == f.size:
            continue
        missing.append(f)
        partial = _size_or(_blob_path(storage, f) + ".incomplete", 0)
        to_fetch += f.size - partial if partial <= f.size else f.size
    return missing, to_fetch


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_disk(path: str, needed: int, reserve: int, disk_usage: Callable[[str], Any] = shutil.disk_usage) -> None:
    where = _existing_ancestor(path)
    free = disk_usage(where).free
    if needed + reserve > free:
        raise NotEnoughDisk(
            f"Not enough free disk for the model at {path}: needs {_gb(needed + reserve)} ({_gb(needed)} of model "
            f"files still to download + {_gb(reserve)} reserve) but {where} has {_gb(free)} free. Free space there "
            "or point hf_home at a larger filesystem.",
            bytes_missing=needed,
            bytes_free=free,
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


class _RepoLock:
    """Exclusive flock on one file per repo for the whole download: a second downloader (a foreground run joining
    a background one) waits, then finds the blobs complete or resumes the partial files of a run that died."""

    def __init__(self, path: str, timeout: Optional[float], sleep: Callable[[float], None], clock: Callable[[], float]):
        self.path = path
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.fd = -1

    def __enter__(self) -> _RepoLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout is None else self.clock() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is not None and self.clock() >= deadline:
                os.close(self.fd)
                raise LockTimeout(
                    f"Another download of this model held {self.path} for more than {self.timeout:g} s; it is "
                    "still running (a dead one releases the lock at once). Wait for it or raise lock_timeout."
                )
            self.sleep(0.5)

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _hashers(path: str, f: RemoteFile) -> Tuple[Any, Any, int]:
    """sha256 and git-sha1 hashers seeded with what a partial file already holds, and its size."""
    sha256 = hashlib.sha256()
    git = hashlib.sha1(b"blob %d\0" % f.size)  # noqa: S324 - git's object id, not a security hash
    size = 0
    if os.path.exists(path):
        with open(path, "rb") as partial:
            for block in iter(lambda: partial.read(_CHUNK), b""):
                sha256.update(block)
                git.update(block)
                size += len(block)
    return sha256, git, size


def fetch_file(client: HubClient, storage: str, plan: Plan, f: RemoteFile) -> int:
    """Download one blob through `<blob>.incomplete`, resuming with Range; verify it, then move it in place.
    Returns the body bytes received."""
    blob = _blob_path(storage, f)
    incomplete = blob + ".incomplete"
    os.makedirs(os.path.dirname(blob), exist_ok=True)
    if _size_or(incomplete, 0) > f.size:
        os.remove(incomplete)
    sha256, git, have = _hashers(incomplete, f)
    open(incomplete, "ab").close()  # so an empty file also ends as a blob
    received = 0
    failures = 0
    url = client.file_url(plan.repo_id, plan.commit, f.name)
    while have < f.size:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = client.open(url, plan.repo_id, headers=headers)
        except RangeNotSatisfiable:
            os.remove(incomplete)  # the server says our partial file is past its end: start again
            sha256, git, have = _hashers(incomplete, f)
            continue
        before = have
        problem = ""
        try:
            mode = "ab"
            if have and response.status != 206:  # the range was ignored: the whole body comes again
                mode, have = "wb", 0
                sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % f.size)  # noqa: S324
            with open(incomplete, mode) as out:
                for block in iter(functools.partial(response.read, _CHUNK), b""):
                    out.write(block)
                    sha256.update(block)
                    git.update(block)
                    have += len(block)
                    received += len(block)
                    if have > f.size:
                        break
        except _NETWORK_ERRORS as err:
            problem = _describe(err)
        finally:
            response.close()
        if have >= f.size:
            break
        # A cut connection shows as an error or as a body that ends early; data received resets the count, as in
        # huggingface_hub's `http_get`.
        failures = 1 if have > before else failures + 1
        if failures > client.retries:
            raise HubUnavailable(
                f"Downloading {f.name} of {plan.repo_id} from {client.endpoint} stopped at {have} of {f.size} bytes "
                f"({problem or 'the connection ended early'}); the partial file {incomplete} is kept for the next "
                "run to resume."
            )
        client.backoff(failures - 1)
    digest_ok = sha256.hexdigest() == f.sha256 if f.sha256 else git.hexdigest() == f.git_oid
    if have != f.size or not digest_ok:
        os.remove(incomplete)
        expected = f"sha256 {f.sha256}" if f.sha256 else f"git blob id {f.git_oid}"
        raise IntegrityError(
            f"{f.name} of {plan.repo_id} from {client.endpoint} does not match what the hub announced "
            f"({have} bytes vs {f.size}, {expected}); the download was discarded, so a re-run starts it again."
        )
    os.replace(incomplete, blob)
    return received


def _link(storage: str, plan: Plan, f: RemoteFile) -> bool:
    """Relative symlink snapshots/<commit>/<name> -> blobs/<etag>, as huggingface_hub's `_create_symlink`."""
    pointer = _pointer_path(storage, plan.commit, f)
    target = os.path.relpath(_blob_path(storage, f), os.path.dirname(pointer))
    if os.path.islink(pointer) and os.readlink(pointer) == target:
        return False
    os.makedirs(os.path.dirname(pointer), exist_ok=True)
    if os.path.lexists(pointer):
        os.remove(pointer)
    os.symlink(target, pointer)
    return True


def _record_path(hf_home: str, repo_id: str, revision: str) -> str:
    # Outside hub/ (huggingface_hub's own tree): which commit and files a revision had when this module completed it.
    name = "models--" + repo_id.replace("/", "--")
    return os.path.join(hf_home, "oci_gpu_vllm", name, quote(revision, safe="") + ".json")


def _record_complete(hf_home: str, repo_id: str, revision: str, result: Dict[str, Any]) -> None:
    record = {k: result[k] for k in ("commit", "snapshot_path", "files", "bytes_total")}
    path = _record_path(hf_home, repo_id, revision)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(record, out)
    os.replace(path + ".tmp", path)


def _complete_copy(hf_home: str, repo_id: str, revision: str) -> Optional[Dict[str, Any]]:
    """The recorded result for the revision if every file of it is still in the snapshot at its size, else None."""
    try:
        with open(_record_path(hf_home, repo_id, revision), encoding="utf-8") as f:
            record = json.load(f)
        files = record["files"]
        snapshot = record["snapshot_path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for item in files:
        if _size_or(os.path.join(snapshot, *str(item["name"]).split("/")), -1) != item["size"]:
            return None
    return record


def _write_ref(storage: str, revision: str, commit: str) -> bool:
    if revision == commit:
        return False
    ref = os.path.join(storage, "refs", *revision.split("/"))
    try:
        with open(ref, encoding="utf-8") as current:
            if current.read() == commit:
                return False
    except OSError:
        pass
    os.makedirs(os.path.dirname(ref), exist_ok=True)
    tmp = f"{ref}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(commit)  # no newline: huggingface_hub reads the ref with f.read()
    os.replace(tmp, ref)
    return True


def read_token(token_file: Optional[str]) -> Optional[str]:
    if not token_file:
        return None
    try:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as err:
        raise TokenFileError(f"Cannot read token_file {token_file}: {err.strerror}.") from None
    if not token:
        raise TokenFileError(f"token_file {token_file} is empty; it must hold a Hugging Face read token.")
    return token


def validate(repo_id: str, revision: str, endpoint: str, hf_home: str, allow_patterns: Any, reserve_bytes: int,
             timeout: float) -> None:  # fmt: skip
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise InvalidArgument(f"repo_id {repo_id!r} is not ORG/NAME (letters, digits, '.', '_', '-').")
    if not revision or revision.startswith("/") or ".." in revision.split("/"):
        raise InvalidArgument(f"revision {revision!r} is not a branch, tag or commit sha.")
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
        raise InvalidArgument(f"endpoint {endpoint!r} is not an http(s) URL such as {DEFAULT_ENDPOINT}.")
    if not hf_home or not os.path.isabs(hf_home):
        raise InvalidArgument(f"hf_home {hf_home!r} must be an absolute path.")
    if allow_patterns is not None and (not allow_patterns or not all(isinstance(p, str) and p for p in allow_patterns)):
        raise InvalidArgument(f"allow_patterns {allow_patterns!r} must be a non-empty list of non-empty patterns.")
    if reserve_bytes < 0:
        raise InvalidArgument(f"reserve_bytes {reserve_bytes} must be 0 or more.")
    if timeout <= 0:
        raise InvalidArgument(f"timeout {timeout} must be more than 0 seconds.")


def _safe_for_a_token(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def download_model(
    repo_id: str,
    hf_home: str,
    revision: str = DEFAULT_REVISION,
    endpoint: str = DEFAULT_ENDPOINT,
    token_file: Optional[str] = None,
    allow_patterns: Optional[List[str]] = None,
    ca_file: Optional[str] = None,
    reserve_bytes: int = 0,
    token: Optional[str] = None,
    ca_data: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    lock_timeout: Optional[float] = None,
    check_mode: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    opener: Optional[urllib.request.OpenerDirector] = None,
    disk_usage: Callable[[str], Any] = shutil.disk_usage,
) -> Dict[str, Any]:
    """Plan, check access and disk, then fill the cache (unless check_mode). Returns the result dict."""
    validate(repo_id, revision, endpoint, hf_home, allow_patterns, reserve_bytes, timeout)
    if retries < 0:
        raise InvalidArgument(f"retries {retries} must be 0 or more.")
    # A token given directly (a new one, checked before it is stored) wins over the stored file.
    source = "the token argument" if token else (token_file or "")
    token = token or read_token(token_file)
    if token and not _safe_for_a_token(endpoint):
        raise InvalidArgument(
            f"endpoint {endpoint} is plain HTTP off the loopback: the token would cross the network in clear. Use "
            "https (ca_file or ca_data for a private CA); plain http only on 127.0.0.0/8, ::1 or localhost."
        )
    client = HubClient(endpoint, token, source, ca_file, timeout, retries, sleep, opener, ca_data)
    try:
        return _download(client, repo_id, hf_home, revision, allow_patterns, reserve_bytes, lock_timeout,
                         check_mode, sleep, clock, disk_usage)  # fmt: skip
    except HfDownloadError as err:
        if token and token in err.msg:  # a server message echoing the token must not carry it further
            err.msg = err.msg.replace(token, "********")
            err.args = (err.msg,)
        raise


def _download(client: HubClient, repo_id: str, hf_home: str, revision: str, allow_patterns: Optional[List[str]],
              reserve_bytes: int, lock_timeout: Optional[float], check_mode: bool, sleep: Callable[[float], None],
              clock: Callable[[], float], disk_usage: Callable[[str], Any]) -> Dict[str, Any]:  # fmt: skip
    patterns = list(allow_patterns) if allow_patterns is not None else list(DEFAULT_ALLOW_PATTERNS)
    storage = storage_folder(hf_home, repo_id)
    try:
        plan = make_plan(client.model_info(repo_id, revision), repo_id, revision, patterns)
    except HubUnavailable as err:
        # A converged host does not need the hub: a revision this module completed before is served from the cache.
        kept = _complete_copy(hf_home, repo_id, revision)
        if kept is None:
            raise
        return dict(kept, changed=False, bytes_downloaded=0, bytes_missing=0,
                    offline=f"{err.msg} Kept the complete copy of {repo_id}@{revision} downloaded before.")  # fmt: skip
    result: Dict[str, Any] = {
        "commit": plan.commit,
        "snapshot_path": os.path.join(storage, "snapshots", plan.commit),
        "files": [{"name": f.name, "size": f.size} for f in plan.files],
        "bytes_total": plan.total_bytes,
        "bytes_downloaded": 0,
    }
    missing, to_fetch = missing_bytes(storage, plan)
    if missing:
        # Access is checked on a file (the hub serves a gated repo's metadata to anyone), the smallest one.
        client.probe(repo_id, plan.commit, min(missing, key=lambda f: f.size).name)
        check_disk(storage, to_fetch, reserve_bytes, disk_usage)
    if check_mode:
        pointers_ok = all(os.path.islink(_pointer_path(storage, plan.commit, f)) for f in plan.files)
        result["changed"] = bool(missing) or not pointers_ok
        result["bytes_missing"] = to_fetch
        return result
    changed = False
    lock_path = os.path.join(hf_home, "hub", ".locks", os.path.basename(storage), LOCK_NAME)
    with _RepoLock(lock_path, lock_timeout, sleep, clock):
        missing, to_fetch = missing_bytes(storage, plan)  # a run we waited for may have done the work
        check_disk(storage, to_fetch, reserve_bytes, disk_usage)
        for f in missing:
            result["bytes_downloaded"] += fetch_file(client, storage, plan, f)
            changed = True
        for f in plan.files:
            changed = _link(storage, plan, f) or changed
        changed = _write_ref(storage, revision, plan.commit) or changed
        _record_complete(hf_home, repo_id, revision, result)
    result["changed"] = changed
    result["bytes_missing"] = 0
    return result

"""Secrets (Hugging Face token, vLLM API key): read from the environment or a file, handed to Ansible only through a
0600 vars file outside the runner's private data dir, and kept out of the environment ansible-runner records.

ansible-runner writes the whole environment of the run into artifacts/<ident>/command, so secret variables are removed
from the process environment (they were read into memory first) before any run starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput

HF_TOKEN_ENV = ("OCI_VLLM_HF_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
API_KEY_ENV = ("OCI_VLLM_API_KEY",)
# Names whose values are never passed on to Ansible's environment (the paths of secret files are fine).
_SECRET_NAME = re.compile(r"(TOKEN|API_KEY|SECRET|PASSWORD|PASSPHRASE)", re.IGNORECASE)
_PATH_NAME = re.compile(r"(_FILE|_PATH|_DIR)$", re.IGNORECASE)


@dataclass(frozen=True)
class Secrets:
    hf_token: str = ""
    api_key: str = ""

    def as_vars(self) -> dict[str, str]:
        out = {}
        if self.hf_token:
            out["vllm_server_hf_token"] = self.hf_token
        if self.api_key:
            out["vllm_server_api_key"] = self.api_key
        return out

    def values(self) -> list[str]:
        return [v for v in (self.hf_token, self.api_key) if v]


def read_secret_file(path: str, what: str) -> str:
    p = Path(path).expanduser()
    try:
        value = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BadInput(f"{what} file {path!r} cannot be read: {exc.strerror}") from None
    if not value:
        raise BadInput(f"{what} file {path!r} is empty: it must hold the {what} on one line")
    if "\n" in value or any(ord(c) < 32 for c in value):
        raise BadInput(f"{what} file {path!r} must hold one line of printable characters")
    return value


def _from_env(names: tuple[str, ...], environ: Mapping[str, str]) -> str:
    for name in names:
        if environ.get(name, "").strip():
            return environ[name].strip()
    return ""


def load_secrets(
    hf_token_file: str | None, api_key_file: str | None, environ: Mapping[str, str] | None = None
) -> Secrets:
    """A file given on the command line wins over the environment."""
    env = os.environ if environ is None else environ
    hf = read_secret_file(hf_token_file, "Hugging Face token") if hf_token_file else _from_env(HF_TOKEN_ENV, env)
    key = read_secret_file(api_key_file, "API key") if api_key_file else _from_env(API_KEY_ENV, env)
    return Secrets(hf_token=hf, api_key=key)


def is_secret_env_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _PATH_NAME.search(name)


@contextlib.contextmanager
def scrubbed_environ() -> Iterator[list[str]]:
    """Remove secret-looking variables from os.environ for the duration (ansible-runner records os.environ)."""
    removed = {name: os.environ.pop(name) for name in list(os.environ) if is_secret_env_name(name)}
    try:
        yield sorted(removed)
    finally:
        os.environ.update(removed)


@contextlib.contextmanager
def secret_vars_file(secrets: Secrets) -> Iterator[str | None]:
    """A 0600 JSON vars file in a fresh 0700 dir (never inside the private data dir); removed on exit."""
    data = secrets.as_vars()
    if not data:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="oci-vllm-secrets-")
    try:
        path = os.path.join(directory, "secrets.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)

"""The seed's three calls against vLLM's OpenAI-compatible API, with urllib (no extra dependency)."""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import BadInput, EndpointError, EndpointUnreachable, OciVllmError
from .project import Project, find_project

# The seed's three requests (the tutorial's calls, bodies without the model) have one home, in the collection: the
# role's smoke test sends them too. `oci-vllm complete` and `oci-vllm chat` send them by default.
SEED_REQUESTS = Path("roles", "vllm_server", "files", "seed_requests.json")
# Ours, not the seed's: its chat sets no max_tokens (vLLM would then generate up to the context length).
DEFAULT_CHAT = {"max_tokens": 128}


@dataclass(frozen=True)
class Seed:
    """The seed's requests as the collection holds them: name (models, completions, chat) -> method, path, body."""

    requests: dict[str, dict[str, Any]]

    @property
    def prompt(self) -> str:
        return str(self.requests["completions"]["body"]["prompt"])

    @property
    def chat_message(self) -> str:
        return str(self.requests["chat"]["body"]["messages"][0]["content"])

    @property
    def completion_options(self) -> dict[str, Any]:
        """The completion's options besides the prompt (the seed's max_tokens and temperature)."""
        return {k: v for k, v in self.requests["completions"]["body"].items() if k != "prompt"}

    def body(self, name: str, model: str, **overrides: Any) -> dict[str, Any]:
        """Request `name`'s body for `model`, with `overrides` on top (e.g. a smaller max_tokens); a copy."""
        return {"model": model, **copy.deepcopy(self.requests[name].get("body", {})), **overrides}


@functools.cache
def load_seed(root: Path) -> Seed:
    path = root / SEED_REQUESTS
    try:
        return Seed(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise OciVllmError(f"cannot read the seed's requests from {path}: {exc}") from None


def seed(project: Project | None = None) -> Seed:
    """The seed's requests from `project`'s collection (default: the checkout find_project finds)."""
    return load_seed((project or find_project()).root)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"--url {url!r} is not allowed: give http://HOST:PORT or https://HOST:PORT")
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """The seed's calls. HTTPS verifies the certificate (with ca_file, else the system's CAs); the API key is never
    sent over plain HTTP except to the loopback."""

    def __init__(self, base_url: str, api_key: str = "", timeout: float = 120.0, ca_file: str = "") -> None:
        self.base_url = check_url(base_url)
        self.api_key = api_key
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        if api_key and parts.scheme == "http" and not _loopback(parts.hostname or ""):
            raise BadInput(
                f"{self.base_url} is plain HTTP: the API key would cross the network in clear text; "
                "use the endpoint's https:// URL (oci-vllm status shows it)"
            )
        self.context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            try:
                self.context = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise BadInput(f"--ca-file {ca_file!r} is not a readable PEM CA file: {exc}") from None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:  # noqa: S310
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            hint = " (wrong or missing API key: set OCI_VLLM_API_KEY or --api-key-file)" if exc.code == 401 else ""
            raise EndpointError(f"{method} {self.base_url}{path} -> HTTP {exc.code}{hint}: {detail}") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                reason = f"certificate not trusted ({reason.verify_message}): give the endpoint's CA with --ca-file"
            raise EndpointUnreachable(f"{method} {self.base_url}{path}: cannot reach the endpoint: {reason}") from None
        except json.JSONDecodeError:
            raise EndpointError(f"{method} {self.base_url}{path}: the answer is not JSON") from None

    def models(self) -> list[str]:
        return [m["id"] for m in self._request("GET", "/v1/models").get("data", [])]

    def complete(self, model: str, prompt: str, **options: Any) -> dict[str, Any]:
        return self._request("POST", "/v1/completions", {"model": model, "prompt": prompt, **options})

    def chat(self, model: str, message: str, **options: Any) -> dict[str, Any]:
        body = {"model": model, "messages": [{"role": "user", "content": message}], **options}
        return self._request("POST", "/v1/chat/completions", body)


def completion_text(answer: dict[str, Any]) -> str:
    choices = answer.get("choices") or [{}]
    return str(choices[0].get("text", ""))


def chat_text(answer: dict[str, Any]) -> str:
    choices = answer.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content", ""))

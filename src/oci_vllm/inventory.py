"""The inventory as rows (host, shape, GPU family, IP) from `ansible-inventory --list` via ansible-runner."""

from __future__ import annotations

from typing import Any

import ansible_runner

from .errors import OciVllmError
from .project import Project
from .runner import ansible_error, runner_context

# Groups that site.yml deploys to.
VLLM_GROUPS = ("oci_gpu", "vllm_servers")


def list_inventory(project: Project, inventory: str | None) -> dict[str, Any]:
    with runner_context(project, "oci-vllm-inv-") as common:
        out, err = ansible_runner.get_inventory(
            action="list",
            inventories=[inventory] if inventory else [],
            response_format="json",
            **common,
        )
    if not isinstance(out, dict):
        raise OciVllmError(f"ansible-inventory failed: {ansible_error(str(err)) or 'no output'}")
    return out


def _group_hosts(data: dict[str, Any], group: str, seen: set[str] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if group in seen:
        return set()
    seen.add(group)
    entry = data.get(group) or {}
    hosts = set(entry.get("hosts") or [])
    for child in entry.get("children") or []:
        hosts |= _group_hosts(data, child, seen)
    return hosts


def plain(value: Any) -> Any:
    """ansible-inventory --list marks values from remote sources as {"__ansible_unsafe": ...}; show the value."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def host_rows(data: dict[str, Any], limit_groups: tuple[str, ...] = VLLM_GROUPS) -> list[dict[str, Any]]:
    """One row per host of the vLLM groups (every host when those groups are absent)."""
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    hosts: set[str] = set()
    for group in limit_groups:
        hosts |= _group_hosts(data, group)
    if not hosts:
        hosts = _group_hosts(data, "all")
    rows = []
    for host in sorted(hosts):
        hv = {key: plain(value) for key, value in (hostvars.get(host) or {}).items()}
        groups = sorted(g for g in data if g not in ("_meta", "all") and host in _group_hosts(data, g))
        rows.append(
            {
                "host": host,
                "shape": hv.get("oci_shape") or "",
                "gpu_family": hv.get("gpu_family") or "",
                "gpu_count": hv.get("gpu_count"),
                "ip": hv.get("ansible_host") or hv.get("oci_public_ip") or hv.get("oci_private_ip") or "",
                "connection": hv.get("ansible_connection") or "ssh",
                "groups": groups,
            }
        )
    return rows

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure inventory logic of oci_gpu.vllm.oci_gpu: which instances to keep, host names, groups and host variables.

Works on plain instance records (dicts, see RECORD_KEYS) so it is testable without the OCI SDK or Ansible.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set

from ._oci_gpu_shapes import gpu_shape, shape_facts

# What the fetch step records per instance (all plain JSON types so the inventory cache can hold them).
RECORD_KEYS = (
    "id", "display_name", "compartment_id", "compartment_name", "region", "availability_domain", "fault_domain",
    "shape", "lifecycle_state", "freeform_tags", "defined_tags", "time_created", "image_id", "gpus",
    "gpu_description", "vnic_id", "subnet_id", "hostname_label", "private_ip", "public_ip", "private_ips", "public_ips",
)  # fmt: skip
# Published as oci_<key>. Left out: gpus/gpu_description (gpu_count/gpu_model say it) and the all-VNIC address lists
# (each container variable costs Ansible ~0.1 ms per host to tag; the primary VNIC's addresses are what hosts use).
HOSTVAR_KEYS = tuple(k for k in RECORD_KEYS if k not in ("gpus", "gpu_description", "private_ips", "public_ips"))
# What a host's shape decides: published once per shape group (`shape_<shape>`) instead of once per host when every
# host of the group agrees (always, for the shapes of the table). Each variable set on a host costs ansible-core 2.19
# ~25 us to tag per value; these are 7 of a host's 26 variables and 18 of its ~45 values.
SHAPE_VAR_KEYS = (
    "gpu_family", "gpu_vendor", "gpu_model", "gpu_count", "gpu_memory_gb", "gpu_total_memory_gb", "oci_gpu_shape",
)  # fmt: skip
_SHAPE_VAR_SET = frozenset(SHAPE_VAR_KEYS)
# Every variable the plugin sets (on hosts, and the shape's on shape groups); option `variables` may pick fewer.
PUBLISHED_VARS = ("ansible_host", *("oci_" + key for key in HOSTVAR_KEYS), *SHAPE_VAR_KEYS)
HOSTNAME_SOURCES = ("public_ip", "private_ip", "display_name", "hostname_label", "id")
ALL_HOSTS_GROUP = "oci_gpu"
_INVALID_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")


class Filters(NamedTuple):
    lifecycle_states: Sequence[str] = ("RUNNING",)
    shapes: Sequence[str] = ()  # exact names or fnmatch patterns; empty means "GPU shapes only"
    gpu_families: Sequence[str] = ()
    freeform_tags: Mapping[str, Any] = {}
    defined_tags: Mapping[str, Mapping[str, Any]] = {}


class HostEntry(NamedTuple):
    name: str
    groups: List[str]
    hostvars: Dict[str, Any]  # every variable the host gets (what compose, groups and keyed_groups see)
    own_vars: Dict[str, Any]  # the part set on the host itself; the rest comes from its shape group


class InventoryPlan(NamedTuple):
    hosts: List[HostEntry]
    children: Dict[str, Set[str]]  # parent group -> child groups
    duplicates: List[str]  # instance ids whose preferred name was taken (named by OCID instead)
    group_vars: Dict[str, Dict[str, Any]]  # shape group -> the SHAPE_VAR_KEYS its hosts share


def sanitize_group(name: str) -> str:
    return _INVALID_GROUP_CHARS.sub("_", name)


def _tag_matches(actual: Any, wanted: Any) -> bool:
    allowed = wanted if isinstance(wanted, (list, tuple)) else [wanted]
    return actual is not None and str(actual) in [str(v) for v in allowed]


def tags_match(freeform: Mapping[str, Any], defined: Mapping[str, Mapping[str, Any]], filters: Filters) -> bool:
    """True when every tag filter matches; a filter value may be one value or a list of allowed values."""
    for key, wanted in filters.freeform_tags.items():
        if not _tag_matches((freeform or {}).get(key), wanted):
            return False
    for namespace, keys in filters.defined_tags.items():
        actual_ns = (defined or {}).get(namespace) or {}
        for key, wanted in keys.items():
            if not _tag_matches(actual_ns.get(key), wanted):
                return False
    return True


def instance_selected(
    shape: str,
    lifecycle_state: str,
    gpus: Optional[int],
    gpu_description: Optional[str],
    freeform: Mapping[str, Any],
    defined: Mapping[str, Mapping[str, Any]],
    filters: Filters,
) -> bool:
    if filters.lifecycle_states and lifecycle_state not in filters.lifecycle_states:
        return False
    gpu = gpu_shape(shape, gpus, gpu_description)
    if filters.shapes:
        if not any(fnmatch.fnmatchcase(shape, pattern) for pattern in filters.shapes):
            return False
    elif gpu is None:
        return False
    if filters.gpu_families and (gpu is None or gpu.family not in filters.gpu_families):
        return False
    return tags_match(freeform, defined, filters)


def choose_hostname(record: Mapping[str, Any], preferences: Iterable[str]) -> Optional[str]:
    for source in preferences:
        value = record.get(source)
        if value:
            return str(value)
    return None


def shape_vars(shape: str, gpus: Optional[int] = None, gpu_description: Optional[str] = None) -> Dict[str, Any]:
    """The SHAPE_VAR_KEYS of an instance of this shape."""
    gpu = gpu_shape(shape, gpus, gpu_description)
    return {
        "gpu_family": gpu.family if gpu else None,
        "gpu_vendor": gpu.vendor if gpu else None,
        "gpu_model": gpu.model if gpu else None,
        "gpu_count": gpu.gpus if gpu else 0,
        "gpu_memory_gb": gpu.memory_gb if gpu else 0,
        "gpu_total_memory_gb": gpu.memory_gb * gpu.gpus if gpu else 0,
        # The whole row of the shape table, read by the roles and the sizing planner (the same dict the
        # oci_gpu.vllm.gpu_shape filter gives static inventories).
        "oci_gpu_shape": shape_facts(shape, gpus, gpu_description),
    }


def host_vars(record: Mapping[str, Any], shape_values: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Every variable of the record's host; `shape_values`: its shape_vars() when already known."""
    if shape_values is None:
        shape_values = shape_vars(record["shape"], record.get("gpus"), record.get("gpu_description"))
    hostvars: Dict[str, Any] = {"oci_" + key: record.get(key) for key in HOSTVAR_KEYS}
    hostvars.update(shape_values)
    hostvars["oci_gpu_shape"] = dict(shape_values["oci_gpu_shape"])  # each host its own copy
    address = record.get("public_ip") or record.get("private_ip")
    if address:
        hostvars["ansible_host"] = address
    return hostvars


def plan_inventory(records: Iterable[Mapping[str, Any]], hostname_preferences: Sequence[str]) -> InventoryPlan:
    """Host names, group memberships and variables for every record, in a stable order.

    Groups: `oci_gpu` (all), the GPU family (`a10`) whose children are the shape groups (`shape_BM_GPU_A10_4`) so
    shape group_vars override family group_vars, plus `region_*`, `ad_*` and `compartment_*`. The shape's facts
    (SHAPE_VAR_KEYS) become variables of the shape group when all its hosts agree, else stay on each host.
    """
    entries: List[tuple] = []
    by_shape_group: Dict[str, List[Dict[str, Any]]] = {}
    children: Dict[str, Set[str]] = {}
    taken: Set[str] = set()
    duplicates: List[str] = []
    # Instances share a few shapes, regions, domains and compartments: each computed once (17,600 hosts: 0.5 -> 0.3 s).
    known_shapes: Dict[tuple, Dict[str, Any]] = {}
    group_names: Dict[tuple, str] = {}

    def group_name(prefix: str, value: str) -> str:
        name = group_names.get((prefix, value))
        if name is None:
            name = group_names[(prefix, value)] = prefix + sanitize_group(value)
        return name

    for record in sorted(records, key=lambda r: (r.get("region") or "", r.get("display_name") or "", r["id"])):
        name = choose_hostname(record, hostname_preferences) or record["id"]
        if name in taken:
            duplicates.append(record["id"])
            name = record["id"]
        taken.add(name)
        shape_key = (record["shape"], record.get("gpus"), record.get("gpu_description"))
        shape_values = known_shapes.get(shape_key)
        if shape_values is None:
            shape_values = known_shapes[shape_key] = shape_vars(*shape_key)
        hostvars = host_vars(record, shape_values)
        shape_group = group_name("shape_", record["shape"])
        family = shape_values["gpu_family"]
        if family:
            children.setdefault(sanitize_group(family), set()).add(shape_group)
        groups = [
            ALL_HOSTS_GROUP,
            shape_group,
            group_name("region_", record.get("region") or "unknown"),
            group_name("ad_", record.get("availability_domain") or "unknown"),
            group_name("compartment_", record.get("compartment_name") or record.get("compartment_id") or "unknown"),
        ]
        by_shape_group.setdefault(shape_group, []).append(shape_values)
        entries.append((name, groups, hostvars, shape_group))
    group_vars = {
        group: found[0]
        for group, found in by_shape_group.items()
        if all(v is found[0] or v == found[0] for v in found[1:])
    }
    hosts = [
        HostEntry(
            name,
            groups,
            hostvars,
            {k: v for k, v in hostvars.items() if k not in _SHAPE_VAR_SET} if group in group_vars else hostvars,
        )
        for name, groups, hostvars, group in entries
    ]
    return InventoryPlan(hosts, children, duplicates, group_vars)

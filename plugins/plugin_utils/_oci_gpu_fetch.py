# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fetch step of oci_gpu.vllm.oci_gpu: a few compartment-wide OCI list calls, run with bounded concurrency.

Cost does not grow with the number of hosts: per region and compartment one ListInstances and one
ListVnicAttachments; then one ListPrivateIps per subnet in use and ListPublicIps per compartment (reserved) and
availability domain (ephemeral). Pages are followed via opc-next-page; retries, paging and the SDK clients are in
_oci_gpu_clients.py. One failing compartment or region gives a warning and the rest of the inventory.

Stages: `_regions_and_compartments` (identity), `_list_instances` (instances and VNIC attachments, starting each
compartment's address listings as soon as its two listings are in), `_join_addresses`, then one `_record` per host.

`clients` is anything with `tenancy`, `default_region`, `call_kwargs` and `identity(region)`, `compute(region)`,
`network(region)` returning OCI SDK clients (or fakes with the same methods): tests inject their own.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from datetime import datetime
from functools import partial
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Set, Tuple

from ._oci_gpu_clients import Api, describe_error, gather
from ._oci_gpu_hosts import Filters, instance_selected

__all__ = ["FetchError", "FetchOptions", "FetchResult", "fetch_inventory"]

ROOT_COMPARTMENT_NAME = "root"


class FetchError(Exception):
    """Nothing at all could be listed (bad credentials, wrong endpoint): an error, not an empty inventory."""


class FetchOptions(NamedTuple):
    regions: Sequence[str] = ()  # empty: the configured region; containing "all": every subscribed region
    compartments: Sequence[str] = ()  # empty: the tenancy (root compartment)
    compartment_subtree: bool = True
    filters: Filters = Filters()
    max_workers: int = 16
    max_retries: int = 6
    retry_base_delay: float = 0.5
    retry_max_delay: float = 20.0
    page_limit: int = 1000


class FetchResult(NamedTuple):
    records: List[Dict[str, Any]]
    warnings: List[str]
    calls: Dict[str, int]  # API calls by operation, retries included


def _iso_time(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str):
        try:  # the API's RFC 3339 text, written as the SDK's datetime would be (2026-11-01T10:00:00+00:00)
            return datetime.fromisoformat(value).isoformat()
        except ValueError:
            return value
    return value


def _primary_first(attachments: List[Any]) -> List[Any]:
    # The primary VNIC is attached at launch, before any secondary VNIC.
    if len(attachments) < 2:  # most instances have one VNIC: nothing to sort
        return attachments
    return sorted(attachments, key=lambda a: (str(getattr(a, "time_created", "") or ""), a.nic_index or 0))


# An instance id -> (region, compartment id, instance) of the selected hosts.
Selected = Dict[str, Tuple[str, str, Any]]


def fetch_inventory(clients: Any, options: FetchOptions, sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    api = Api(clients, options, sleep)
    warnings: List[str] = []
    with ThreadPoolExecutor(max_workers=max(1, options.max_workers)) as pool:
        regions, names, compartments = _regions_and_compartments(api, pool, clients, options, warnings)
        selected, attachments, address_futures = _list_instances(
            api, pool, clients, options, regions, compartments, names, warnings
        )
        wait(address_futures.values())
    private_by_vnic, public_by_private_id = _join_addresses(address_futures, warnings)
    warnings.sort()
    records = [
        _record(
            region, names.get(comp, comp), inst, attachments.get(inst.id, []), private_by_vnic, public_by_private_id
        )
        for region, comp, inst in selected.values()
    ]
    return FetchResult(records, warnings, dict(api.calls))


def _regions_and_compartments(
    api: Api, pool: ThreadPoolExecutor, clients: Any, options: FetchOptions, warnings: List[str]
) -> Tuple[List[str], Dict[str, str], List[str]]:
    """The regions to list, compartment names by id, and the compartments to list (identity calls, in parallel)."""
    tenancy = clients.tenancy
    home = clients.default_region
    identity = clients.identity(home)
    identity_jobs: Dict[Any, Callable[[], Any]] = {}
    if "all" in options.regions:
        identity_jobs["regions"] = partial(
            api.call, "ListRegionSubscriptions", identity.list_region_subscriptions, tenancy_id=tenancy
        )
    roots = list(options.compartments) or [tenancy]
    if options.compartment_subtree and tenancy in roots:
        identity_jobs["subtree"] = partial(
            api.list_all,
            "ListCompartments",
            identity.list_compartments,
            compartment_id=tenancy,
            compartment_id_in_subtree=True,
            access_level="ANY",
            lifecycle_state="ACTIVE",
        )
    for root in roots:
        if root != tenancy:
            identity_jobs[("get", root)] = partial(
                api.call, "GetCompartment", identity.get_compartment, compartment_id=root
            )
    identity_results = gather(pool, identity_jobs)

    if "all" in options.regions:
        subscriptions, error = identity_results["regions"]
        subscribed = subscriptions.data if error is None else []
        if error is not None:
            warnings.append("cannot list subscribed regions (%s); using %s only" % (describe_error(error), home))
        regions = sorted(s.region_name for s in subscribed if (s.status or "READY") == "READY") or [home]
        regions += [r for r in options.regions if r != "all" and r not in regions]
    else:
        regions = list(options.regions) or [home]

    names: Dict[str, str] = {tenancy: ROOT_COMPARTMENT_NAME}
    compartments: List[str] = []
    for root in roots:
        if root == tenancy:
            continue
        found, error = identity_results[("get", root)]
        if error is not None:
            warnings.append("compartment %s: cannot read it (%s); listing it anyway" % (root, describe_error(error)))
        else:
            names[root] = found.data.name
    if "subtree" in identity_results:
        listed, error = identity_results["subtree"]
        if error is not None:
            warnings.append("cannot list the compartment tree: %s; using only %s" % (describe_error(error), roots))
        else:
            names.update((c.id, c.name) for c in listed)
            compartments.extend(c.id for c in listed)
    if options.compartment_subtree:
        compartments.extend(_descendants(api, pool, identity, [r for r in roots if r != tenancy], names, warnings))
    return regions, names, list(dict.fromkeys(roots + compartments))


def _list_instances(
    api: Api,
    pool: ThreadPoolExecutor,
    clients: Any,
    options: FetchOptions,
    regions: List[str],
    compartments: List[str],
    names: Dict[str, str],
    warnings: List[str],
) -> Tuple[Selected, Dict[str, List[Any]], Dict[Any, Future]]:
    """Instances and VNIC attachments, one listing each per region and compartment. As soon as both listings of a
    compartment are in, its address listings start, so no stage waits for the slowest compartment of the previous
    one. Returns the selected instances, their attached VNICs by instance id, and the address listings under way."""
    listing_futures: Dict[Future, Tuple[str, str]] = {}
    listings: Dict[Tuple[str, str, str], Future] = {}
    for region in regions:
        compute = clients.compute(region)
        for comp in compartments:
            for kind, operation, method in (
                ("instances", "ListInstances", compute.list_instances),
                ("attachments", "ListVnicAttachments", compute.list_vnic_attachments),
            ):
                future = pool.submit(api.list_all, operation, method, compartment_id=comp)
                listings[(kind, region, comp)] = future
                listing_futures[future] = (region, comp)

    selected: Selected = {}
    attachments: Dict[str, List[Any]] = {}
    address_futures: Dict[Any, Future] = {}
    processed: Set[Tuple[str, str]] = set()
    failures: Dict[str, List[Tuple[str, BaseException]]] = {}
    reached: Set[str] = set()
    listed = 0
    for done in as_completed(listing_futures):
        region, comp = listing_futures[done]
        inst_future, att_future = listings[("instances", region, comp)], listings[("attachments", region, comp)]
        if (region, comp) in processed or not (inst_future.done() and att_future.done()):
            continue
        processed.add((region, comp))
        error = inst_future.exception() or att_future.exception()
        if error is not None:
            failures.setdefault(region, []).append((comp, error))
            continue
        listed += 1
        reached.add(region)
        chosen = [inst for inst in inst_future.result() if _selected(inst, options.filters)]
        for inst in chosen:
            selected[inst.id] = (region, comp, inst)
        for att in att_future.result():
            if att.instance_id in selected and att.lifecycle_state == "ATTACHED":
                attachments.setdefault(att.instance_id, []).append(att)
        jobs = _address_jobs(clients.network(region), region, comp, chosen, attachments)
        for key, (operation, method, kwargs) in jobs.items():
            if key not in address_futures:
                address_futures[key] = pool.submit(api.list_all, operation, method, **kwargs)

    for region, failed in sorted(failures.items()):
        if region not in reached:  # nothing answered in this region: one warning, not one per compartment
            warnings.append("skipping region %s: %s" % (region, describe_error(failed[0][1])))
            continue
        for comp, error in failed:
            warnings.append(
                "skipping compartment %s (%s) in region %s: %s"
                % (names.get(comp, comp), comp, region, describe_error(error))
            )
    if not listed:
        raise FetchError("no compartment could be listed in any region; " + "; ".join(sorted(warnings)[:3]))
    return selected, attachments, address_futures


def _address_jobs(
    network: Any, region: str, comp: str, chosen: List[Any], attachments: Dict[str, List[Any]]
) -> Dict[Any, Tuple[Any, ...]]:
    """The address listings a compartment's chosen instances need, keyed so each is listed once: private IPs per
    subnet, public IPs per compartment (reserved) and availability domain (ephemeral)."""
    jobs: Dict[Any, Tuple[Any, ...]] = {}
    for inst in chosen:
        for att in attachments.get(inst.id, []):
            jobs[("private", region, att.subnet_id)] = (
                "ListPrivateIps", network.list_private_ips, {"subnet_id": att.subnet_id}
            )  # fmt: skip
        jobs[("reserved", region, comp)] = (
            "ListPublicIps", network.list_public_ips,
            {"scope": "REGION", "compartment_id": comp, "lifetime": "RESERVED"},
        )  # fmt: skip
        jobs[("ephemeral", region, comp, inst.availability_domain)] = (
            "ListPublicIps", network.list_public_ips,
            {"scope": "AVAILABILITY_DOMAIN", "compartment_id": comp,
             "availability_domain": inst.availability_domain, "lifetime": "EPHEMERAL"},
        )  # fmt: skip
    return jobs


def _join_addresses(
    address_futures: Dict[Any, Future], warnings: List[str]
) -> Tuple[Dict[str, List[Any]], Dict[str, str]]:
    """Private IPs by VNIC id, and public addresses by the private IP (its OCID) they are assigned to."""
    private_by_vnic: Dict[str, List[Any]] = {}
    public_by_private_id: Dict[str, str] = {}
    for key, future in address_futures.items():
        error = future.exception()
        if error is not None:
            warnings.append("%s addresses in %s unavailable: %s" % (key[0], key[1:], describe_error(error)))
            continue
        for item in future.result():
            if key[0] == "private":
                private_by_vnic.setdefault(item.vnic_id, []).append(item)
            else:
                target = getattr(item, "assigned_entity_id", None) or getattr(item, "private_ip_id", None)
                if target:
                    public_by_private_id[target] = item.ip_address
    return private_by_vnic, public_by_private_id


def _selected(inst: Any, filters: Filters) -> bool:
    config = inst.shape_config
    return instance_selected(
        inst.shape,
        inst.lifecycle_state,
        getattr(config, "gpus", None),
        getattr(config, "gpu_description", None),
        inst.freeform_tags or {},
        inst.defined_tags or {},
        filters,
    )


def _descendants(
    api: Api, pool: ThreadPoolExecutor, identity: Any, roots: List[str], names: Dict[str, str], warnings: List[str]
) -> List[str]:
    """Breadth-first walk below non-root compartments (compartmentIdInSubtree only works on the tenancy)."""
    found: List[str] = []
    level = roots
    seen: Set[str] = set(roots)
    while level:
        jobs: Dict[Any, Callable[[], Any]] = {
            parent: partial(
                api.list_all,
                "ListCompartments",
                identity.list_compartments,
                compartment_id=parent,
                lifecycle_state="ACTIVE",
            )
            for parent in level
        }
        next_level: List[str] = []
        for parent, (children, error) in gather(pool, jobs).items():
            if error is not None:
                warnings.append("cannot list compartments below %s: %s" % (parent, describe_error(error)))
                continue
            for child in children:
                if child.id not in seen:
                    seen.add(child.id)
                    names[child.id] = child.name
                    next_level.append(child.id)
        found.extend(next_level)
        level = next_level
    return found


def _record(
    region: str,
    compartment_name: str,
    inst: Any,
    atts: List[Any],
    private_by_vnic: Dict[str, List[Any]],
    public_by_private_id: Dict[str, str],
) -> Dict[str, Any]:
    config = inst.shape_config
    record: Dict[str, Any] = {
        "id": inst.id,
        "display_name": inst.display_name,
        "compartment_id": inst.compartment_id,
        "compartment_name": compartment_name,
        "region": inst.region or region,
        "availability_domain": inst.availability_domain,
        "fault_domain": inst.fault_domain,
        "shape": inst.shape,
        "lifecycle_state": inst.lifecycle_state,
        "freeform_tags": dict(inst.freeform_tags or {}),
        "defined_tags": {ns: dict(keys) for ns, keys in (inst.defined_tags or {}).items()},
        "time_created": _iso_time(inst.time_created),
        "image_id": inst.image_id,
        "gpus": getattr(config, "gpus", None),
        "gpu_description": getattr(config, "gpu_description", None),
        "vnic_id": None,
        "subnet_id": None,
        "hostname_label": None,
        "private_ip": None,
        "public_ip": None,
        "private_ips": [],
        "public_ips": [],
    }
    private_ips, public_ips = record["private_ips"], record["public_ips"]
    for att in _primary_first(atts):
        vnic_id = att.vnic_id
        ips = private_by_vnic.get(vnic_id, [])
        if len(ips) > 1:
            ips = sorted(ips, key=lambda p: not p.is_primary)
        for ip in ips:
            private_ips.append(ip.ip_address)
            public = public_by_private_id.get(ip.id)
            if public:
                public_ips.append(public)
        if record["vnic_id"] is None:
            record["vnic_id"], record["subnet_id"] = vnic_id, att.subnet_id
            if ips:
                record["private_ip"] = ips[0].ip_address
                record["hostname_label"] = ips[0].hostname_label
                record["public_ip"] = public_by_private_id.get(ips[0].id)
    return record

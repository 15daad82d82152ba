# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fetch step of oci_gpu.vllm.oci_gpu: a few compartment-wide OCI list calls, run with bounded concurrency.

Cost does not grow with the number of hosts: per region and compartment one ListInstances and one
ListVnicAttachments; then one ListPrivateIps per subnet in use and ListPublicIps per compartment (reserved) and
availability domain (ephemeral). Pages are followed via opc-next-page. HTTP 429 and 5xx are retried with exponential
backoff and jitter here, because core operations do not retry by themselves. One failing compartment or region gives
a warning and the rest of the inventory.

`clients` is anything with `tenancy`, `default_region`, `call_kwargs` and `identity(region)`, `compute(region)`,
`network(region)` returning OCI SDK clients (or fakes with the same methods): tests inject their own.

The real clients are made with `skip_deserialization=True` (a constructor option of every client of oci 2.189, read
by `BaseClient.deserialize_response_data`): responses carry the API's JSON (camelCase keys) instead of SDK model
objects. Building the models took about 80% of the fetch's CPU time (2,000 instances, measured with yappi: 3.8 of
4.8 CPU-seconds, a quarter of it `strptime` for timestamps nobody reads). `Wire` reads that JSON with the models'
snake_case attribute names, so the code below reads both.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from datetime import datetime
from functools import partial
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from ..module_utils._oci_auth import oci_auth
from ._oci_gpu_hosts import Filters, instance_selected
from ._oci_tls import share_tls_context

RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
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


def describe_error(exc: BaseException) -> str:
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    if status is not None:
        return "HTTP %s %s: %s" % (status, code or "", message)
    return "%s: %s" % (type(exc).__name__, message)


_CAMEL_NAMES: Dict[str, str] = {}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class Wire(dict):
    """One JSON object of the OCI API, readable as the SDK model would be: `inst.shape_config.gpus` reads
    `inst["shapeConfig"]["gpus"]`; a field the service left out reads as None, as on a model."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = _CAMEL_NAMES.get(name)
        if key is None:
            key = _CAMEL_NAMES.setdefault(name, _camel(name))
        return wire(self.get(key))


def wire(value: Any) -> Any:
    """JSON objects (also inside lists) as `Wire`; anything else (SDK models, fakes, scalars) unchanged."""
    if isinstance(value, dict):
        return value if isinstance(value, Wire) else Wire(value)
    if isinstance(value, list):
        return [Wire(v) if isinstance(v, dict) and not isinstance(v, Wire) else v for v in value]
    return value


def _iso_time(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str):
        try:  # the API's RFC 3339 text, written as the SDK's datetime would be (2026-11-01T10:00:00+00:00)
            return datetime.fromisoformat(value).isoformat()
        except ValueError:
            return value
    return value


class _Api:
    """Counted, retried, paginated calls."""

    def __init__(self, clients: Any, options: FetchOptions, sleep: Callable[[float], None]):
        self.clients = clients
        self.options = options
        self.sleep = sleep
        self.calls: Counter = Counter()
        self._lock = threading.Lock()

    def call(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        attempt = 0
        while True:
            with self._lock:
                self.calls[operation] += 1
            try:
                response = method(**kwargs, **self.clients.call_kwargs)
                response.data = wire(response.data)
                return response
            except Exception as exc:
                if getattr(exc, "status", None) not in RETRY_STATUSES or attempt >= self.options.max_retries:
                    raise
                delay = min(self.options.retry_max_delay, self.options.retry_base_delay * 2**attempt)
                self.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
                attempt += 1

    def list_all(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> List[Any]:
        items: List[Any] = []
        page: Optional[str] = None
        while True:
            paging: Dict[str, Any] = {"limit": self.options.page_limit}
            if page:
                paging["page"] = page
            response = self.call(operation, method, **kwargs, **paging)
            items.extend(response.data or [])
            page = response.next_page
            if not page:
                return items


def _gather(
    pool: ThreadPoolExecutor, jobs: Dict[Any, Callable[[], Any]]
) -> Dict[Any, Tuple[Any, Optional[BaseException]]]:
    futures: Dict[Any, Future] = {key: pool.submit(job) for key, job in jobs.items()}
    results: Dict[Any, Tuple[Any, Optional[BaseException]]] = {}
    for key, future in futures.items():
        try:
            results[key] = (future.result(), None)
        except Exception as exc:
            results[key] = (None, exc)
    return results


def _primary_first(attachments: List[Any]) -> List[Any]:
    # The primary VNIC is attached at launch, before any secondary VNIC.
    return sorted(attachments, key=lambda a: (str(getattr(a, "time_created", "") or ""), a.nic_index or 0))


def fetch_inventory(clients: Any, options: FetchOptions, sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    api = _Api(clients, options, sleep)
    warnings: List[str] = []
    tenancy = clients.tenancy
    home = clients.default_region
    identity = clients.identity(home)

    with ThreadPoolExecutor(max_workers=max(1, options.max_workers)) as pool:
        # 1. Regions and compartments (identity, in parallel).
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
        identity_results = _gather(pool, identity_jobs)

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
                warnings.append(
                    "compartment %s: cannot read it (%s); listing it anyway" % (root, describe_error(error))
                )
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
        compartments = list(dict.fromkeys(roots + compartments))

        # 2. Instances and VNIC attachments, one listing per region and compartment; as soon as both listings of a
        # compartment are in, 3. its address listings start (private IPs per subnet, public IPs per compartment and
        # availability domain), so no stage waits for the slowest compartment of the previous one.
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

        selected: Dict[str, Tuple[str, str, Any]] = {}  # instance id -> (region, compartment, instance)
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
            network = clients.network(region)
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
        wait(address_futures.values())

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

    warnings.sort()
    records = [
        _record(
            region, names.get(comp, comp), inst, attachments.get(inst.id, []), private_by_vnic, public_by_private_id
        )
        for region, comp, inst in selected.values()
    ]
    return FetchResult(records, warnings, dict(api.calls))


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
    api: _Api, pool: ThreadPoolExecutor, identity: Any, roots: List[str], names: Dict[str, str], warnings: List[str]
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
        for parent, (children, error) in _gather(pool, jobs).items():
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
    for att in _primary_first(atts):
        ips = sorted(private_by_vnic.get(att.vnic_id, []), key=lambda p: not p.is_primary)
        for ip in ips:
            record["private_ips"].append(ip.ip_address)
            public = public_by_private_id.get(ip.id)
            if public:
                record["public_ips"].append(public)
        if record["vnic_id"] is None:
            record["vnic_id"], record["subnet_id"] = att.vnic_id, att.subnet_id
            if ips:
                record["private_ip"] = ips[0].ip_address
                record["hostname_label"] = ips[0].hostname_label
                record["public_ip"] = public_by_private_id.get(ips[0].id)
    return record


class SdkClients:
    """Real OCI SDK clients: one signer, one client per service and region, created on first use and reused."""

    def __init__(
        self,
        auth_type: str = "api_key",
        config_file: str = "~/.oci/config",
        profile: str = "DEFAULT",
        region: Optional[str] = None,
        tenancy: Optional[str] = None,
        timeout: float = 60.0,
    ):
        import oci  # the plugin checks the import first and reports a missing SDK clearly

        self._oci = oci
        self._config, self._signer = oci_auth(oci, auth_type, config_file, profile, region)
        self.tenancy = tenancy or self._config["tenancy"]
        self.default_region = self._config["region"]
        self.call_kwargs = {"retry_strategy": oci.retry.NoneRetryStrategy()}
        self._timeout = (10.0, float(timeout))
        self._clients: Dict[Tuple[str, str], Any] = {}
        self._sessions: Dict[Tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _client(self, cls: Any, region: str, host: str) -> Any:
        with self._lock:
            key = (cls.__name__, region)
            if key not in self._clients:
                config = dict(self._config, region=region)
                client = cls(config, signer=self._signer, timeout=self._timeout, skip_deserialization=True)
                # Compute and VirtualNetwork talk to the same host: one connection pool for both halves the TLS
                # handshakes and CA bundle loads (~20-40 ms of CPU per new connection).
                shared = self._sessions.get((host, region))
                if shared is None:
                    shared = self._sessions[(host, region)] = client.base_client.session
                    share_tls_context(shared)  # the CA bundle loaded once, not once per new connection
                client.base_client.session = shared
                self._clients[key] = client
            return self._clients[key]

    def identity(self, region: str) -> Any:
        return self._client(self._oci.identity.IdentityClient, region, "identity")

    def compute(self, region: str) -> Any:
        return self._client(self._oci.core.ComputeClient, region, "iaas")

    def network(self, region: str) -> Any:
        return self._client(self._oci.core.VirtualNetworkClient, region, "iaas")

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""OCI API access for oci_gpu.vllm.oci_gpu's fetch step: the SDK clients, and the counted, retried, paginated calls.

`SdkClients` is what the fetch step needs of OCI: `tenancy`, `default_region`, `call_kwargs` and `identity(region)`,
`compute(region)`, `network(region)` returning SDK clients. Tests and benchmarks hand in fakes with the same shape.

The real clients are made with `skip_deserialization=True` (a constructor option of every client of oci 2.189, read
by `BaseClient.deserialize_response_data`): responses carry the API's JSON (camelCase keys) instead of SDK model
objects. Building the models took about 80% of the fetch's CPU time (2,000 instances, measured with yappi: 3.8 of
4.8 CPU-seconds, a quarter of it `strptime` for timestamps nobody reads). `Wire` reads that JSON with the models'
snake_case attribute names, so the fetch step reads both. Since no model object is built, the client classes are
loaded without the SDK's model modules (`client_class`).

HTTP 429 and 5xx are retried here with exponential backoff and jitter, because core operations do not retry by
themselves (the SDK's own retry is switched off with `NoneRetryStrategy`, so every call is counted once per try).
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import sys
import threading
import types
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..module_utils._oci_auth import oci_auth
from ._oci_tls import share_tls_context

RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))


def describe_error(exc: BaseException) -> str:
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    if status is not None:
        return "HTTP %s %s: %s" % (status, code or "", message)
    return "%s: %s" % (type(exc).__name__, message)


_CAMEL_NAMES: Dict[str, str] = {}
# The fields the fetch step reads, made properties of Wire: a property is found by the normal attribute lookup, where
# __getattr__ runs only after that lookup failed (3 to 5 times slower; 2,000 instances take ~80,000 reads).
_READ_FIELDS = (
    "id", "display_name", "compartment_id", "region", "availability_domain", "fault_domain", "shape",
    "lifecycle_state", "freeform_tags", "defined_tags", "time_created", "image_id", "shape_config", "gpus",
    "gpu_description", "instance_id", "vnic_id", "subnet_id", "nic_index", "ip_address", "is_primary",
    "hostname_label", "assigned_entity_id", "private_ip_id", "name", "region_name", "status",
)  # fmt: skip


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


def _field(key: str) -> property:
    def read(self: Wire) -> Any:
        value = self.get(key)
        return wire(value) if isinstance(value, (dict, list)) else value

    return property(read)


for _name in _READ_FIELDS:
    setattr(Wire, _name, _field(_camel(_name)))


def wire(value: Any) -> Any:
    """JSON objects (also inside lists) as `Wire`; anything else (SDK models, fakes, scalars) unchanged."""
    if isinstance(value, dict):
        return value if isinstance(value, Wire) else Wire(value)
    if isinstance(value, list):
        return [Wire(v) if isinstance(v, dict) and not isinstance(v, Wire) else v for v in value]
    return value


class Api:
    """Counted, retried, paginated calls. `options` has `max_retries`, `retry_base_delay`, `retry_max_delay` and
    `page_limit` (the fetch step's FetchOptions)."""

    def __init__(self, clients: Any, options: Any, sleep: Callable[[float], None]):
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


def gather(
    pool: ThreadPoolExecutor, jobs: Dict[Any, Callable[[], Any]]
) -> Dict[Any, Tuple[Any, Optional[BaseException]]]:
    """Run the jobs on the pool; each key's (result, None) or (None, error)."""
    futures: Dict[Any, Future] = {key: pool.submit(job) for key, job in jobs.items()}
    results: Dict[Any, Tuple[Any, Optional[BaseException]]] = {}
    for key, future in futures.items():
        try:
            results[key] = (future.result(), None)
        except Exception as exc:
            results[key] = (None, exc)
    return results


_client_classes: Dict[Tuple[str, str, str], Any] = {}
_client_classes_lock = threading.Lock()
_LEAN_PREFIX = "_oci_gpu_vllm_lean_sdk_"


def client_class(package: str, module: str, name: str) -> Any:
    """The SDK client class `oci.<package>.<module>.<name>` (e.g. core, compute_client, ComputeClient).

    Imported the usual way, `oci.<package>` imports every model class of the service first (oci.core: ~730 modules,
    0.15 s of CPU, as much as the rest of the fetch's set-up). The client module uses them only through
    `from .models import <package>_type_mapping`, to build model objects (skipped: skip_deserialization) and to check
    request bodies (these list and get calls send none). So the module is run from the SDK's own file inside a private
    package whose `models` holds an empty mapping; `oci.<package>` itself is left untouched. If the SDK is laid out
    otherwise (any other relative import fails there), the usual import is used."""
    key = (package, module, name)
    with _client_classes_lock:
        found = _client_classes.get(key)
        if found is None:
            try:
                found = _lean_client_class(package, module, name)
            except Exception:
                found = getattr(importlib.import_module("oci.%s.%s" % (package, module)), name)
            _client_classes[key] = found
        return found


def _lean_client_class(package: str, module: str, name: str) -> Any:
    spec = importlib.util.find_spec("oci." + package)  # imports `oci`, not `oci.<package>`
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("oci.%s is not a package" % package)
    private = _LEAN_PREFIX + package
    if private not in sys.modules:
        models = types.ModuleType(private + ".models")
        setattr(models, "%s_type_mapping" % package, {})
        parent = types.ModuleType(private)
        parent.__path__ = []  # a package with nothing else in it
        sys.modules[private], sys.modules[private + ".models"] = parent, models
    location = "%s/%s.py" % (next(iter(spec.submodule_search_locations)), module)
    module_spec = importlib.util.spec_from_file_location("%s.%s" % (private, module), location)
    if module_spec is None or module_spec.loader is None:
        raise ImportError("no %s in oci.%s" % (module, package))
    loaded = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = loaded
    try:
        module_spec.loader.exec_module(loaded)
        return getattr(loaded, name)
    except BaseException:
        del sys.modules[module_spec.name]
        raise


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
        return self._client(client_class("identity", "identity_client", "IdentityClient"), region, "identity")

    def compute(self, region: str) -> Any:
        return self._client(client_class("core", "compute_client", "ComputeClient"), region, "iaas")

    def network(self, region: str) -> Any:
        return self._client(client_class("core", "virtual_network_client", "VirtualNetworkClient"), region, "iaas")

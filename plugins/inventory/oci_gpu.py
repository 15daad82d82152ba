# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0
from __future__ import annotations

DOCUMENTATION = r"""
name: oci_gpu
short_description: OCI GPU instances, grouped by GPU family, found with a few compartment-wide list calls
version_added: 0.1.0
description:
  - Lists Oracle Cloud (OCI) compute instances with GPU shapes and groups them by GPU family (C(a10), C(a100),
    C(h100), ...), shape, region, availability domain and compartment, so C(ansible-playbook site.yml -l a10) targets
    every A10 host.
  - The cost does not grow with the number of hosts; per region and compartment it lists instances and VNIC attachments,
    then private IPs per subnet in use and public IPs per compartment and availability domain, with bounded
    concurrency. HTTP 429 and 5xx answers are retried with exponential backoff and jitter.
  - A compartment or region that cannot be read gives a warning and the rest of the inventory.
  - Groups C(<family>) (parent) > C(shape_<shape>) (child), so variables for a shape override those of its family;
    also C(oci_gpu), C(region_<region>), C(ad_<availability domain>), C(compartment_<name>) (C(compartment_root) for the
    tenancy). Unsafe characters in group names become C(_).
  - Host variables are C(oci_*) (OCIDs, region, availability domain, shape, tags, addresses) and C(ansible_host)
    (public IP, else private IP).
  - What the shape decides is a variable of the C(shape_<shape>) group, set once for all its hosts (every host of a
    shape has the same values, and Ansible pays per variable set), namely C(gpu_family), C(gpu_vendor), C(gpu_model),
    C(gpu_count), C(gpu_memory_gb) (per GPU), C(gpu_total_memory_gb), C(oci_gpu_shape) (the shape's row of the
    collection's shape table, as the C(oci_gpu.vllm.gpu_shape) filter gives it, with GPU count, memory in MiB,
    architecture, NVSwitch, open kernel modules). Hosts see them as their own variables; C(group_vars) files of the
    inventory can override them. C(compose), C(groups) and C(keyed_groups) see them too.
  - Every value read from OCI is marked unsafe, so it is never templated.
  - Configuration files must end in C(.oci_gpu.yml) or C(.oci_gpu.yaml).
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
requirements:
  - oci (the OCI Python SDK) on the controller
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    required: true
    type: str
    choices: [oci_gpu.vllm.oci_gpu]
  auth_type:
    description: C(api_key) signs with the key of an OCI config file profile; C(instance_principal) uses the identity
      of the OCI instance running Ansible.
    type: str
    default: api_key
    choices: [api_key, instance_principal]
    env:
      - name: OCI_AUTH_TYPE
  config_file:
    description: OCI config file, for I(auth_type=api_key).
    type: path
    default: ~/.oci/config
    env:
      - name: OCI_CONFIG_FILE
  config_profile:
    description: Profile of the OCI config file.
    type: str
    default: DEFAULT
    env:
      - name: OCI_CONFIG_PROFILE
  tenancy:
    description: Tenancy OCID; default from the config file or the instance principal.
    type: str
    env:
      - name: OCI_TENANCY
  regions:
    description:
      - Regions to list. Empty means the region of the config profile (or of the instance principal).
      - C(all) means every region the tenancy subscribes to.
    type: list
    elements: str
    default: []
    env:
      - name: OCI_REGIONS
  compartments:
    description: Compartment OCIDs to list. Empty means the tenancy (root compartment).
    type: list
    elements: str
    default: []
  compartment_subtree:
    description: Also list every active compartment below the given ones.
    type: bool
    default: true
  lifecycle_states:
    description: Keep instances in these states only; empty keeps every state.
    type: list
    elements: str
    default: [RUNNING]
  shapes:
    description:
      - Keep instances whose shape matches one of these names or shell-style patterns (C(BM.GPU.*)).
      - Empty keeps GPU shapes only (the plugin's table of known OCI GPU shapes, plus any shape OCI reports GPUs for).
    type: list
    elements: str
    default: []
  gpu_families:
    description: Keep instances of these GPU families only (C(a10), C(a100), C(h100), ...); empty keeps all.
    type: list
    elements: str
    default: []
  freeform_tags:
    description: Keep instances whose free-form tags have these values; a value may be a list of allowed values.
    type: dict
    default: {}
  defined_tags:
    description: "Keep instances whose defined tags match, as C({namespace: {key: value}})."
    type: dict
    default: {}
  hostnames:
    description: Inventory host name sources, first available wins; the instance OCID is the last resort and is also
      used when a name is already taken.
    type: list
    elements: str
    default: [public_ip, private_ip, display_name]
  variables:
    description:
      - Which of the plugin's variables to set, by name; empty (the default) sets all of them.
      - For very large fleets, where C(ansible-inventory --list) spends most of its time in ansible-core, which copies,
        merges and prints every variable of every host.
      - Allowed are C(ansible_host), the C(oci_*) host variables and the shape's variables listed above (those stay
        on the C(shape_<shape>) groups).
      - C(compose), C(groups) and C(keyed_groups) still see every variable, so a host can keep what it needs under a
        name of its own.
      - This collection's plays read C(oci_id), C(oci_shape), C(gpu_count) and C(oci_gpu_shape); keep them when the
        inventory feeds those plays.
      - "Measured with a warm cache by C(benchmarks/bench_inventory.py): 1,760 hosts take 1.8 s with every variable and
        0.8 s with C(variables: [ansible_host]) (a one-host inventory: 0.4 s); 17,600 hosts take 17 s and 5.7 s."
    type: list
    elements: str
    default: []
  max_concurrency:
    description:
      - API calls in flight at once. HTTP 429 answers are retried with backoff (I(max_retries), I(retry_base_delay)).
      - 16 halves the wait of 8 on a 2,000-instance tenancy with 50 ms per call (measured by
        C(benchmarks/bench_inventory.py)); more gains little there.
    type: int
    default: 16
  max_retries:
    description: Retries of one call answered with HTTP 429 or 5xx.
    type: int
    default: 6
  retry_base_delay:
    description: First backoff delay in seconds; doubles per retry (with jitter), at most 20 seconds.
    type: float
    default: 0.5
  timeout:
    description: Read timeout of one API call, in seconds.
    type: float
    default: 60
"""

EXAMPLES = r"""
# inventory/oci/tenancy.oci_gpu.yml
plugin: oci_gpu.vllm.oci_gpu
regions: [all]
compartments: [ocid1.compartment.oc1..aaaaexample]
freeform_tags:
  vllm: "true"
hostnames: [private_ip, display_name]
keyed_groups:
  - key: oci_freeform_tags.team | default('none')
    prefix: team
compose:
  ansible_user: "'ubuntu'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/oci_gpu_inventory
cache_timeout: 300
"""

import gc  # noqa: E402
import importlib.util  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from ansible.errors import AnsibleError, AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_clients import SdkClients  # noqa: E402
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import (  # noqa: E402
    FetchError,
    FetchOptions,
    FetchResult,
    fetch_inventory,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import (  # noqa: E402
    HOSTNAME_SOURCES,
    PUBLISHED_VARS,
    Filters,
    plan_inventory,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._unsafe import make_unsafe  # noqa: E402

HAS_OCI = importlib.util.find_spec("oci") is not None


@contextmanager
def _without_cycle_collection():
    """Python's cycle collector runs after every few hundred new objects, and its older generations walk every live
    object. Reading the records and setting every host's variables (ansible-core copies each value it is given) make
    millions of objects into a heap that only grows, so the collector walked it again and again: a third of the
    parse at 17,600 hosts. Reference counting still frees what is not in a cycle; the collector runs again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "oci_gpu.vllm.oci_gpu"

    def __init__(self):
        super().__init__()
        self.clients = None  # tests inject an object with the SdkClients interface here
        self.last_fetch: FetchResult | None = None

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".oci_gpu.yml", ".oci_gpu.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        options = self._fetch_options()  # validates the configuration even when the cache answers
        cache_key = self.get_cache_key(path)
        user_cache = self.get_option("cache")
        records = None
        update_cache = user_cache and not cache
        if user_cache and cache:
            try:
                with _without_cycle_collection():
                    records = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if records is None:
            # Not paused here: the fetch's threads, retries and back-off can run for minutes.
            records = self._fetch(options)
        if update_cache:
            self._cache[cache_key] = records
        with _without_cycle_collection():
            self._populate(records)

    def _fetch_options(self):
        bad = [h for h in self.get_option("hostnames") if h not in HOSTNAME_SOURCES]
        if bad:
            raise AnsibleParserError(
                "oci_gpu: unknown hostnames source(s) %s; allowed: %s" % (", ".join(bad), ", ".join(HOSTNAME_SOURCES))
            )
        unknown = [v for v in self.get_option("variables") or [] if v not in PUBLISHED_VARS]
        if unknown:
            raise AnsibleParserError(
                "oci_gpu: unknown variables %s; allowed: %s" % (", ".join(unknown), ", ".join(PUBLISHED_VARS))
            )
        defined = self.get_option("defined_tags")
        if not all(isinstance(v, dict) for v in defined.values()):
            raise AnsibleParserError("oci_gpu: defined_tags must map namespace -> {key: value}, got %r" % (defined,))
        filters = Filters(
            lifecycle_states=tuple(self.get_option("lifecycle_states")),
            shapes=tuple(self.get_option("shapes")),
            gpu_families=tuple(self.get_option("gpu_families")),
            freeform_tags=dict(self.get_option("freeform_tags")),
            defined_tags=dict(defined),
        )
        return FetchOptions(
            regions=tuple(self.get_option("regions")),
            compartments=tuple(self.get_option("compartments")),
            compartment_subtree=self.get_option("compartment_subtree"),
            filters=filters,
            max_workers=self.get_option("max_concurrency"),
            max_retries=self.get_option("max_retries"),
            retry_base_delay=self.get_option("retry_base_delay"),
        )

    def _fetch(self, options):
        clients = self.clients
        if clients is None:
            if not HAS_OCI:
                raise AnsibleError("oci_gpu: the 'oci' Python SDK is required on the controller (pip install oci)")
            try:
                clients = SdkClients(
                    auth_type=self.get_option("auth_type"),
                    config_file=self.get_option("config_file"),
                    profile=self.get_option("config_profile"),
                    region=next((r for r in self.get_option("regions") if r != "all"), None),
                    tenancy=self.get_option("tenancy"),
                    timeout=self.get_option("timeout"),
                )
            except Exception as exc:
                raise AnsibleParserError(
                    "oci_gpu: cannot set up OCI authentication (auth_type=%s, config_file=%s, profile=%s): %s"
                    % (
                        self.get_option("auth_type"),
                        self.get_option("config_file"),
                        self.get_option("config_profile"),
                        exc,
                    )
                ) from exc
        try:
            result = fetch_inventory(clients, options)
        except FetchError as exc:
            raise AnsibleParserError("oci_gpu: %s" % exc) from exc
        self.last_fetch = result
        for warning in result.warnings:
            self.display.warning("oci_gpu: %s" % warning)
        return result.records

    def _populate(self, records):
        plan = plan_inventory(records, self.get_option("hostnames"))
        wanted = set(self.get_option("variables") or PUBLISHED_VARS)
        inventory = self.inventory
        add_group, add_host, set_variable = inventory.add_group, inventory.add_host, inventory.set_variable
        for parent, children in sorted(plan.children.items()):
            add_group(parent)
            for child in sorted(children):
                add_group(child)
                inventory.add_child(parent, child)
        if plan.duplicates:
            self.display.warning(
                "oci_gpu: %d duplicate host names (addresses or names repeated across VCNs or regions), named by OCID "
                "instead: %s%s"
                % (
                    len(plan.duplicates),
                    ", ".join(plan.duplicates[:10]),
                    ", ..." if len(plan.duplicates) > 10 else "",
                )
            )
        for group, values in sorted(plan.group_vars.items()):
            add_group(group)
            for key, value in make_unsafe(values).items():
                if key in wanted:
                    set_variable(group, key, value)
        # Every group once, in the order the hosts name them (as when each was added with its first host).
        for group in dict.fromkeys(group for host in plan.hosts for group in host.groups):
            add_group(group)
        strict, compose = self.get_option("strict"), self.get_option("compose")
        groups, keyed_groups = self.get_option("groups"), self.get_option("keyed_groups")
        constructed = bool(compose or groups or keyed_groups)
        for host in plan.hosts:
            name = make_unsafe(host.name)
            for group in host.groups:
                add_host(name, group=group)
            own_vars = make_unsafe({k: v for k, v in host.own_vars.items() if k in wanted})
            for key, value in own_vars.items():
                set_variable(name, key, value)
            if constructed:  # they see every variable of the host, also those on its shape group or left out
                hostvars = make_unsafe(host.hostvars)
                self._set_composite_vars(compose, hostvars, name, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, name, strict=strict)

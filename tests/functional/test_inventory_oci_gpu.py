"""oci_gpu.vllm.oci_gpu through the real `oci` SDK and Ansible's InventoryManager, against the loopback OCI emulator.

Needs root: the emulator listens on 127.0.0.71:443 and /etc/hosts gets entries for its endpoint names
(tests/functional/oci_emulator/harness.py explains the OCI_DEFAULT_REALM mechanism).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oci_emulator.fleet import TENANCY, add_compartment, add_instance, build_fleet
from oci_emulator.harness import Harness, endpoint_names, ensure_hosts_entries
from oci_emulator.inventory_run import ROOT, ensure_collection_loader, load_inventory, write_config

DOMAIN = "ocigpu-test.test"
ADDRESS = "127.0.0.71"
PAGE_MAX = 5
TRICKY_NAME = "{{ lookup('pipe','id') }}"
# Written from OCI's shape documentation, independently of the plugin's table.
EXPECTED = {
    "VM.GPU.A10.1": ("a10", 1, 24),
    "VM.GPU.A10.2": ("a10", 2, 24),
    "BM.GPU.A10.4": ("a10", 4, 24),
    "BM.GPU4.8": ("a100", 8, 40),
    "BM.GPU.A100-v2.8": ("a100", 8, 80),
    "BM.GPU.H100.8": ("h100", 8, 80),
    "BM.GPU.L40S.4": ("l40s", 4, 48),
    "BM.GPU.MI300X.8": ("mi300x", 8, 192),
}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for /etc/hosts entries and port 443")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    state = build_fleet(60, n_compartments=5)
    locked = add_compartment(state, "locked")
    state["inaccessible"].append(locked)
    for i in range(2):
        add_instance(state, "emu-east-1", locked, "locked-%d" % i)
    add_instance(state, "emu-west-1", "ocid1.compartment.oc1..emuteam0", TRICKY_NAME, public=True)
    harness = Harness(tmp_path_factory.mktemp("oci-emu"), state, DOMAIN, ADDRESS, page_max=PAGE_MAX)
    harness.apply_env()
    yield harness
    harness.close()


@pytest.fixture
def calls(emu):
    emu.reset_calls()
    return emu.calls


def cfg(tmp_path: Path, **options) -> Path:
    options.setdefault("regions", ["all"])
    options.setdefault("retry_base_delay", 0.01)
    return write_config(tmp_path / "test.oci_gpu.yml", **options)


def expected_hosts(state, compartments=None, keep=lambda inst: True):
    """instance id -> (instance, region, primary vnic), computed from the emulator state, not the plugin."""
    result = {}
    for region, instances in state["instances"].items():
        for inst in instances:
            if inst["compartmentId"] in state["inaccessible"]:
                continue
            if compartments is not None and inst["compartmentId"] not in compartments:
                continue
            if inst["lifecycleState"] != "RUNNING" or inst["shape"] not in EXPECTED or not keep(inst):
                continue
            atts = sorted(
                (a for a in state["vnicAttachments"][region] if a["instanceId"] == inst["id"]),
                key=lambda a: a["timeCreated"],
            )
            result[inst["id"]] = (inst, region, state["vnics"][region][atts[0]["vnicId"]])
    return result


def all_vars(host):
    """A host's variables as a play sees them from the inventory: its groups' (the shape group holds the GPU facts)
    under its own."""
    from ansible.inventory.helpers import get_group_vars
    from ansible.utils.vars import combine_vars

    return combine_vars(get_group_vars(host.get_groups()), host.get_vars())


def by_id(inventory):
    return {h.get_vars()["oci_id"]: h for h in inventory.get_hosts()}


def test_groups_hostvars_and_hostnames(emu, calls, tmp_path):
    inventory = load_inventory(cfg(tmp_path))
    hosts = by_id(inventory)
    expected = expected_hosts(emu.state)
    assert set(hosts) == set(expected)
    assert len(hosts) > 40
    for iid, (inst, region, vnic) in expected.items():
        host = hosts[iid]
        hv = all_vars(host)
        family, count, memory = EXPECTED[inst["shape"]]
        assert host.name == (vnic["publicIp"] or vnic["privateIp"])
        assert (hv["gpu_family"], hv["gpu_count"], hv["gpu_memory_gb"]) == (family, count, memory)
        assert hv["oci_private_ip"] == vnic["privateIp"]
        assert hv["oci_public_ip"] == vnic["publicIp"]
        assert hv["ansible_host"] == (vnic["publicIp"] or vnic["privateIp"])
        assert hv["oci_region"] == region
        assert hv["oci_freeform_tags"] == inst["freeformTags"]
        assert hv["oci_defined_tags"] == inst["definedTags"]
        groups = {g.name for g in host.get_groups()}
        shape_group = "shape_" + inst["shape"].replace(".", "_").replace("-", "_")
        ad_group = "ad_" + inst["availabilityDomain"].replace(":", "_").replace("-", "_")
        assert {family, shape_group, "oci_gpu", "region_" + region.replace("-", "_"), ad_group} <= groups
    # family groups are parents of shape groups, so `-l a10` reaches every A10 shape
    a10_children = {g.name for g in inventory.groups["a10"].child_groups}
    assert a10_children == {"shape_VM_GPU_A10_1", "shape_VM_GPU_A10_2", "shape_BM_GPU_A10_4"}
    assert {h.name for h in inventory.get_hosts("a10")} == {
        hosts[i].name for i, entry in expected.items() if EXPECTED[entry[0]["shape"]][0] == "a10"
    }
    nested = inventory.groups["compartment_team_4"].get_hosts()
    assert nested, "team-4 is nested under team-3 and must be found through the subtree listing"


def test_pagination_over_many_pages(emu, calls, tmp_path):
    inventory = load_inventory(cfg(tmp_path))
    assert len(inventory.get_hosts()) == len(expected_hosts(emu.state))
    counted = calls()
    pages = 0
    for instances in emu.state["instances"].values():
        comps = [c["id"] for c in emu.state["compartments"] if c["id"] not in emu.state["inaccessible"]] + [TENANCY]
        for comp in comps:
            n = sum(1 for i in instances if i["compartmentId"] == comp)
            pages += max(1, math.ceil(n / PAGE_MAX))
    assert counted["ListInstances"] == pages
    assert counted["Error404"] == 4  # the inaccessible compartment: instances + attachments, in each region
    assert counted["ListInstances"] > 20


def test_throttling_is_retried(emu, calls, tmp_path):
    emu.emulator.throttle("ListInstances", 3)
    emu.emulator.throttle("ListPublicIps", 2)
    emu.emulator.throttle("ListCompartments", 1)
    inventory = load_inventory(cfg(tmp_path))
    assert set(by_id(inventory)) == set(expected_hosts(emu.state))
    assert emu.emulator.throttles == {"ListInstances": 0, "ListPublicIps": 0, "ListCompartments": 0}
    public = [h for h in inventory.get_hosts() if h.get_vars()["oci_public_ip"]]
    assert len(public) > 20


def test_sustained_throttling_does_not_trip_the_sdk_circuit_breaker(emu, calls, tmp_path):
    # More 429s than the SDK's default circuit breaker tolerates (10): our backoff must stay in charge.
    emu.emulator.throttle("ListVnicAttachments", 30)
    inventory = load_inventory(cfg(tmp_path, max_retries=40))
    assert set(by_id(inventory)) == set(expected_hosts(emu.state))
    assert emu.emulator.throttles["ListVnicAttachments"] == 0


def test_inaccessible_compartment_warns_and_keeps_the_rest(emu, calls, tmp_path, monkeypatch):
    from ansible.utils.display import Display

    warned = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *args, **kwargs: warned.append(msg))
    inventory = load_inventory(cfg(tmp_path))
    names = {h.get_vars()["oci_display_name"] for h in inventory.get_hosts()}
    assert not names & {"locked-0", "locked-1"}
    assert len(names) == len(expected_hosts(emu.state))
    locked = [w for w in warned if "skipping compartment locked" in w]
    assert len(locked) == 2 and all("NotAuthorizedOrNotFound" in w for w in locked), warned  # one per region


def test_unreachable_region_warns_and_keeps_the_rest(emu, calls, tmp_path, monkeypatch):
    from ansible.utils.display import Display

    # Names resolve, but nothing listens there: connection refused, as for a region that is down or firewalled.
    ensure_hosts_entries(endpoint_names(DOMAIN, ["emu-dead-1"]), "127.0.0.74")
    warned = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *args, **kwargs: warned.append(msg))
    inventory = load_inventory(cfg(tmp_path, regions=["emu-east-1", "emu-dead-1"]))
    regions = {h.get_vars()["oci_region"] for h in inventory.get_hosts()}
    assert regions == {"emu-east-1"}
    expected = expected_hosts(emu.state)
    assert len(inventory.get_hosts()) == sum(1 for _inst, region, _vnic in expected.values() if region == "emu-east-1")
    assert [w for w in warned if "emu-dead-1" in w] == [w for w in warned if w.startswith("oci_gpu: skipping region")]
    assert len([w for w in warned if "skipping region emu-dead-1" in w]) == 1, warned


def test_cache_second_run_makes_no_api_calls(emu, calls, tmp_path):
    config = cfg(
        tmp_path,
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(tmp_path / "cache"),
        cache_timeout=600,
    )
    first = load_inventory(config)
    first_calls = sum(calls().values())
    assert first_calls > 10
    emu.reset_calls()
    second = load_inventory(config)
    assert calls() == {}
    assert {h.name: h.get_vars()["oci_id"] for h in first.get_hosts()} == {
        h.name: h.get_vars()["oci_id"] for h in second.get_hosts()
    }
    assert {h.name for h in second.get_hosts("a100")} == {h.name for h in first.get_hosts("a100")}


@pytest.mark.parametrize("preference", [["display_name"], ["private_ip"], ["public_ip", "display_name"]])
def test_hostname_preference(emu, calls, tmp_path, preference):
    inventory = load_inventory(cfg(tmp_path, hostnames=preference))
    hosts = by_id(inventory)
    for inst, _region, vnic in expected_hosts(emu.state).values():
        values = {"display_name": inst["displayName"], "private_ip": vnic["privateIp"], "public_ip": vnic["publicIp"]}
        wanted = next(values[p] for p in preference if values[p])
        assert hosts[inst["id"]].name == wanted
    if preference == ["public_ip", "display_name"]:
        assert any(not h.get_vars()["oci_public_ip"] and h.name.startswith("gpu-") for h in hosts.values())


def test_tag_filters(emu, calls, tmp_path):
    config = cfg(tmp_path, freeform_tags={"vllm": "true"}, defined_tags={"Ops": {"env": ["prod"]}})
    got = set(by_id(load_inventory(config)))

    def keep(inst):
        return inst["freeformTags"].get("vllm") == "true" and inst["definedTags"].get("Ops", {}).get("env") == "prod"

    assert got == set(expected_hosts(emu.state, keep=keep))
    assert got


def test_subtree_compartments(emu, calls, tmp_path):
    team3 = "ocid1.compartment.oc1..emuteam3"
    team4 = "ocid1.compartment.oc1..emuteam4"
    with_subtree = set(by_id(load_inventory(cfg(tmp_path, compartments=[team3]))))
    assert with_subtree == set(expected_hosts(emu.state, compartments={team3, team4}))
    without = set(by_id(load_inventory(cfg(tmp_path, compartments=[team3], compartment_subtree=False))))
    assert without == set(expected_hosts(emu.state, compartments={team3}))
    assert without < with_subtree


def test_shape_and_family_filters(emu, calls, tmp_path):
    got = by_id(load_inventory(cfg(tmp_path, gpu_families=["a100"])))
    assert {h.get_vars()["oci_shape"] for h in got.values()} == {"BM.GPU4.8", "BM.GPU.A100-v2.8"}
    cpu = by_id(load_inventory(cfg(tmp_path, shapes=["VM.Standard.*"], lifecycle_states=[])))
    assert cpu and all(all_vars(h)["gpu_count"] == 0 for h in cpu.values())


def test_keyed_groups_and_compose(emu, calls, tmp_path):
    config = cfg(
        tmp_path,
        keyed_groups=[{"key": "oci_freeform_tags.team", "prefix": "team"}],
        compose={"vllm_server_tensor_parallel_size": "gpu_count"},
        groups={"big_memory": "gpu_total_memory_gb >= 640"},
    )
    inventory = load_inventory(config)
    assert "team_team_0" in inventory.groups
    for host in inventory.get_hosts():
        hv = all_vars(host)
        assert hv["vllm_server_tensor_parallel_size"] == hv["gpu_count"]
    assert {h.get_vars()["oci_shape"] for h in inventory.get_hosts("big_memory")} == {
        "BM.GPU.A100-v2.8",
        "BM.GPU.H100.8",
        "BM.GPU.MI300X.8",
    }


def plain(value):
    """ansible-inventory --list marks untrusted (remote) strings as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def _env(emu, **extra):
    env = dict(os.environ, **emu.env)
    env.update(
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True",
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        **extra,
    )
    return env


def test_ansible_inventory_cli(emu, calls, tmp_path):
    shutil.copytree(ROOT / "inventory" / "oci" / "group_vars", tmp_path / "group_vars")
    config = cfg(tmp_path)
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-inventory"), "-i", str(config), "--list"],
        env=_env(emu), capture_output=True, text=True, check=False, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"shape_VM_GPU_A10_1", "shape_BM_GPU_A10_4"} <= set(data["a10"]["children"])
    assert len(data["_meta"]["hostvars"]) == len(expected_hosts(emu.state))
    tricky = [hv for hv in data["_meta"]["hostvars"].values() if "lookup" in str(hv["oci_display_name"])]
    assert [hv["oci_display_name"] for hv in tricky] == [{"__ansible_unsafe": TRICKY_NAME}]
    assert "skipping compartment locked" in proc.stderr
    # the example group_vars: family profile, overridden by the shape profile for 4 x A10
    profiles = {}
    for hv in data["_meta"]["hostvars"].values():
        if "vllm_server_model" not in hv:
            assert plain(hv["gpu_family"]) == "mi300x"  # no profile: needs a ROCm image
            continue
        profile = (hv["vllm_server_model"], hv["vllm_server_tensor_parallel_size"], hv["vllm_server_quantization"])
        profiles.setdefault(plain(hv["oci_shape"]), set()).add(profile)
    assert profiles["VM.GPU.A10.1"] == {("mistralai/Mistral-7B-Instruct-v0.2", 1, "")}
    assert profiles["VM.GPU.A10.2"] == {("mistralai/Mistral-7B-Instruct-v0.2", 2, "")}
    assert profiles["BM.GPU.A10.4"] == {("TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ", 4, "awq_marlin")}
    assert profiles["BM.GPU4.8"] == profiles["BM.GPU.H100.8"] == {("mistralai/Mixtral-8x7B-Instruct-v0.1", 8, "")}
    assert profiles["BM.GPU.L40S.4"] == {("mistralai/Mixtral-8x7B-Instruct-v0.1", 4, "")}


def test_remote_strings_are_not_templated(emu, calls, tmp_path):
    config = cfg(tmp_path, hostnames=["private_ip"])
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        "- hosts: oci_gpu\n  gather_facts: false\n  connection: local\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: 'NAME=[{{ oci_display_name }}]'\n"
        "      when: oci_display_name is search('lookup')\n"
    )
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(config), str(playbook)],
        env=_env(emu, ANSIBLE_PYTHON_INTERPRETER=sys.executable), capture_output=True, text=True, check=False,
        timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NAME=[%s]" % TRICKY_NAME in proc.stdout
    assert "uid=" not in proc.stdout


def test_example_group_vars_give_each_host_its_shape_for_the_driver_role(emu, calls, tmp_path):
    shutil.copytree(ROOT / "inventory" / "oci" / "group_vars", tmp_path / "group_vars")
    playbook = tmp_path / "shape.yml"
    playbook.write_text(
        "- hosts: oci_gpu\n  gather_facts: false\n  connection: local\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: 'SHAPE {{ oci_id }} {{ nvidia_driver_shape }}'\n"
    )
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(cfg(tmp_path)), str(playbook)],
        env=_env(emu, ANSIBLE_PYTHON_INTERPRETER=sys.executable), capture_output=True, text=True, check=False,
        timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = dict(re.findall(r"SHAPE (ocid1\S+) ([^\s\"']+)", proc.stdout))
    expected = {oci_id: inst["shape"] for oci_id, (inst, _region, _vnic) in expected_hosts(emu.state).items()}
    assert seen == expected


def test_bad_credentials_fail_clearly(emu, calls, tmp_path):
    other = tmp_path / "other-key"
    other.mkdir()
    from oci_emulator.harness import make_api_key

    wrong = make_api_key(other, emu.regions[0])  # a key the emulator does not know
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-inventory"), "-i", str(cfg(tmp_path)), "--list"],
        env=_env(emu, OCI_CONFIG_FILE=wrong["config"]), capture_output=True, text=True, check=False, timeout=120,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "NotAuthenticated" in proc.stderr
    assert emu.emulator.bad_signatures > 0


def test_missing_config_file_is_named(emu, tmp_path):
    missing = tmp_path / "nope" / "config"
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-inventory"), "-i", str(cfg(tmp_path)), "--list"],
        env=_env(emu, OCI_CONFIG_FILE=str(missing)), capture_output=True, text=True, check=False, timeout=120,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode != 0
    assert str(missing) in proc.stderr


# --- one TLS context per CA bundle (plugins/plugin_utils/_oci_tls.py) ------------------------------------------------
def sdk_clients(emu):
    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_clients import SdkClients

    return SdkClients(config_file=emu.env["OCI_CONFIG_FILE"])


def test_the_ca_bundle_is_loaded_once_for_all_connections(emu, calls, monkeypatch):
    import ssl

    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils import _oci_tls
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import FetchOptions, fetch_inventory

    loads = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(
        ssl.SSLContext, "load_verify_locations", lambda self, *a, **k: loads.append(1) or real(self, *a, **k)
    )
    monkeypatch.setattr(_oci_tls, "_contexts", {})
    result = fetch_inventory(sdk_clients(emu), FetchOptions(regions=("all",), max_workers=16))
    assert result.records and sum(calls().values()) > 20  # many calls, many connections in flight
    assert len(loads) == 1  # the SDK alone loads the bundle once per new connection


def test_shared_context_still_verifies_the_server(emu, monkeypatch, tmp_path):
    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils import _oci_tls
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import (
        FetchError,
        FetchOptions,
        fetch_inventory,
    )
    from oci._vendor import requests

    monkeypatch.setattr(_oci_tls, "_contexts", {})
    # 1. A bundle without the emulator's CA: every call fails certificate verification.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    with pytest.raises(FetchError, match=r"(?i)certificate verify failed"):
        fetch_inventory(sdk_clients(emu), FetchOptions(regions=("emu-east-1",), max_retries=0))
    # 2. The right CA but a name the certificate does not carry (its address): refused, as without the shared context.
    session = requests.Session()
    assert _oci_tls.share_tls_context(session)
    with pytest.raises(requests.exceptions.SSLError, match=r"(?i)hostname|match|IP address"):
        session.get("https://%s/_emulator/stats" % ADDRESS, verify=emu.env["REQUESTS_CA_BUNDLE"], timeout=5)
    # 3. The right CA and name through the same session: accepted.
    url = "https://iaas.%s.%s/_emulator/stats" % (emu.regions[0], DOMAIN)
    assert session.get(url, verify=emu.env["REQUESTS_CA_BUNDLE"], timeout=5).status_code == 200


# --- SDK client classes without the SDK's model modules (plugins/plugin_utils/_oci_gpu_clients.py) --------------------
LEAN_CHECK = """
import sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_clients import client_class
lean = {n: client_class(p, m, n) for p, m, n in (("core", "compute_client", "ComputeClient"),
        ("core", "virtual_network_client", "VirtualNetworkClient"), ("identity", "identity_client", "IdentityClient"))}
print(sorted(m for m in sys.modules if m.startswith(("oci.core", "oci.identity"))))
import oci.core, oci.identity
sdk = {"ComputeClient": oci.core.ComputeClient, "VirtualNetworkClient": oci.core.VirtualNetworkClient,
       "IdentityClient": oci.identity.IdentityClient}
print(all(lean[n] is not sdk[n] and set(vars(lean[n])) == set(vars(sdk[n])) for n in sdk))
"""


def test_client_classes_load_without_the_model_modules(emu, calls):
    proc = subprocess.run(
        [sys.executable, "-c", LEAN_CHECK, str(ROOT / ".collections")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "True"]  # neither oci.core nor oci.identity imported; same methods
    # and they make real, signed calls (every fetch of this file goes through them too)
    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import FetchOptions, fetch_inventory

    clients = sdk_clients(emu)
    assert type(clients.compute(emu.regions[0])).__module__.startswith("_oci_gpu_vllm_lean_sdk_core.")
    assert fetch_inventory(clients, FetchOptions(regions=("all",))).records


def test_client_class_falls_back_to_the_sdk_import(monkeypatch):
    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils import _oci_gpu_clients

    def layout_changed(*args):
        raise ImportError("cannot import name 'other' from '_oci_gpu_vllm_lean_sdk_core.models'")

    monkeypatch.setattr(_oci_gpu_clients, "_lean_client_class", layout_changed)
    monkeypatch.setattr(_oci_gpu_clients, "_client_classes", {})
    import oci.core

    assert _oci_gpu_clients.client_class("core", "compute_client", "ComputeClient") is oci.core.ComputeClient

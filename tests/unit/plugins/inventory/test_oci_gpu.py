# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The inventory plugin's parse/populate with an injected fake OCI client (no SDK, no network)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.plugin_utils.oci_gpu_fakes import FakeOci, add_host, comp


def parse(tmp_path, fake, text="plugin: oci_gpu.vllm.oci_gpu\n"):
    config = tmp_path / "fake.oci_gpu.yml"
    config.write_text(text)
    plugin = inventory_loader.get("oci_gpu.vllm.oci_gpu")
    assert plugin.verify_file(str(config))
    plugin.clients = fake
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(config), cache=False)
    return plugin, inventory


@pytest.fixture
def fake():
    fake = FakeOci(page_size=1000)
    fake.compartments = [comp("c1")]
    add_host(fake, "r1", "c1", 1)
    add_host(fake, "r1", "c1", 2, shape="BM.GPU.A10.4", public=False)
    add_host(fake, "r1", "c1", 3, shape="BM.GPU.H100.8")
    return fake


def test_verify_file_wants_the_suffix(tmp_path):
    plugin = inventory_loader.get("oci_gpu.vllm.oci_gpu")
    for name, ok in (("a.oci_gpu.yml", True), ("a.oci_gpu.yaml", True), ("a.yml", False), ("oci_gpu.yml", False)):
        path = tmp_path / name
        path.write_text("plugin: oci_gpu.vllm.oci_gpu\n")
        assert plugin.verify_file(str(path)) is ok, name


def test_populate_groups_and_vars(tmp_path, fake):
    plugin, inventory = parse(tmp_path, fake)
    assert set(inventory.hosts) == {"203.0.113.1", "10.0.0.2", "203.0.113.3"}
    assert set(inventory.groups["a10"].child_groups[i].name for i in range(2)) == {
        "shape_VM_GPU_A10_1",
        "shape_BM_GPU_A10_4",
    }
    host = inventory.get_host("10.0.0.2")
    assert host.vars["ansible_host"] == "10.0.0.2" and "gpu_count" not in host.vars
    assert inventory.groups["shape_BM_GPU_A10_4"].vars["gpu_count"] == 4  # once per shape, not per host
    assert {g.name for g in host.groups} >= {"oci_gpu", "shape_BM_GPU_A10_4", "compartment_name_c1"}
    assert plugin.last_fetch.calls["ListInstances"] == 2  # root + c1, one page each


def test_bad_hostnames_option_names_the_value(tmp_path, fake):
    with pytest.raises(AnsibleParserError, match=r"unknown hostnames source.*ip_address.*allowed: public_ip"):
        parse(tmp_path, fake, "plugin: oci_gpu.vllm.oci_gpu\nhostnames: [ip_address]\n")


def test_bad_defined_tags_option_is_explained(tmp_path, fake):
    with pytest.raises(AnsibleParserError, match="defined_tags must map namespace"):
        parse(tmp_path, fake, "plugin: oci_gpu.vllm.oci_gpu\ndefined_tags: {Ops: prod}\n")


def test_by_default_every_variable_is_set(tmp_path, fake):
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import PUBLISHED_VARS

    _plugin, inventory = parse(tmp_path, fake)
    for host in inventory.hosts.values():
        shape_group = next(g for g in host.groups if g.name.startswith("shape_"))
        assert set(host.vars) | set(shape_group.vars) >= set(PUBLISHED_VARS)


def test_variables_option_sets_only_the_named_ones_and_compose_sees_all(tmp_path, fake):
    _plugin, inventory = parse(
        tmp_path,
        fake,
        "plugin: oci_gpu.vllm.oci_gpu\nvariables: [ansible_host, gpu_count]\n"
        "compose: {name_from_oci: oci_display_name, tp: gpu_count}\n"
        "keyed_groups: [{key: oci_shape, prefix: by}]\n",
    )
    host = inventory.get_host("10.0.0.2")
    own = {k for k in host.vars if k not in ("inventory_file", "inventory_dir")}
    assert own == {"ansible_host", "name_from_oci", "tp"}
    assert host.vars["name_from_oci"] == "h2" and host.vars["tp"] == 4  # compose saw variables left out
    assert inventory.groups["shape_BM_GPU_A10_4"].vars == {"gpu_count": 4}
    assert "by_BM_GPU_A10_4" in {g.name for g in host.groups}


def test_unknown_variables_are_named(tmp_path, fake):
    with pytest.raises(AnsibleParserError, match=r"unknown variables oci_ips, gpu; allowed: ansible_host, oci_id"):
        parse(tmp_path, fake, "plugin: oci_gpu.vllm.oci_gpu\nvariables: [ansible_host, oci_ips, gpu]\n")


def test_parse_pauses_the_cycle_collector_and_restores_it(tmp_path, fake, monkeypatch):
    import gc

    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils import _oci_gpu_hosts

    seen = []
    real_plan = _oci_gpu_hosts.plan_inventory
    fail = []

    def plan(*args):
        seen.append(gc.isenabled())
        if fail:
            raise AnsibleParserError("planning failed")
        return real_plan(*args)

    monkeypatch.setattr("ansible_collections.oci_gpu.vllm.plugins.inventory.oci_gpu.plan_inventory", plan)
    assert gc.isenabled()
    parse(tmp_path, fake)
    assert seen == [False] and gc.isenabled()
    fail.append(True)  # populating fails inside the pause: the collector is still restored
    with pytest.raises(AnsibleParserError, match="planning failed"):
        parse(tmp_path, fake)
    assert seen == [False, False] and gc.isenabled()
    fail.clear()
    fake.denied = {fake.tenancy, "c1"}  # the fetch fails (it runs with the collector on)
    with pytest.raises(AnsibleParserError, match="no compartment could be listed"):
        parse(tmp_path, fake)
    assert gc.isenabled()
    fake.denied = set()
    gc.disable()  # whoever had it off keeps it off
    try:
        parse(tmp_path, fake)
        assert not gc.isenabled()
    finally:
        gc.enable()

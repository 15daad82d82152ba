# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure inventory logic of the oci_gpu plugin (plugins/plugin_utils/_oci_gpu_hosts.py): which instances are kept,
host names, groups and host variables."""

from __future__ import annotations

from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import (
    Filters,
    instance_selected,
    plan_inventory,
)


# --- selection ------------------------------------------------------------------------------------------------------
def selected(shape="VM.GPU.A10.1", state="RUNNING", gpus=1, freeform=None, defined=None, **filters):
    return instance_selected(shape, state, gpus, None, freeform or {}, defined or {}, Filters(**filters))


def test_default_selection_is_running_gpu_hosts():
    assert selected()
    assert not selected(state="STOPPED")
    assert not selected(shape="VM.Standard.E4.Flex", gpus=0)
    assert selected(state="STOPPED", lifecycle_states=())


def test_shape_patterns_and_families():
    assert selected(shape="VM.Standard.E4.Flex", gpus=0, shapes=["VM.Standard.*"])
    assert not selected(shapes=["BM.GPU.*"])
    assert selected(shape="BM.GPU.H100.8", gpus=8, gpu_families=["h100"])
    assert not selected(gpu_families=["h100"])


def test_tag_filters():
    tags = {"vllm": "true", "team": "ml"}
    defined = {"Ops": {"env": "prod"}}
    assert selected(freeform=tags, freeform_tags={"vllm": "true"})
    assert selected(freeform=tags, freeform_tags={"team": ["ml", "infra"]})
    assert not selected(freeform=tags, freeform_tags={"vllm": "false"})
    assert not selected(freeform={}, freeform_tags={"vllm": "true"})
    assert selected(defined=defined, defined_tags={"Ops": {"env": "prod"}})
    assert not selected(defined=defined, defined_tags={"Ops": {"env": "dev"}})
    assert not selected(defined={}, defined_tags={"Ops": {"env": "prod"}})


# --- naming and grouping --------------------------------------------------------------------------------------------
def record(iid, shape="BM.GPU.A10.4", name="host", public=None, private="10.0.0.2", **extra):
    base = {
        "id": iid, "display_name": name, "shape": shape, "region": "us-ashburn-1",
        "availability_domain": "Uocm:US-ASHBURN-AD-1", "compartment_name": "ml-team", "public_ip": public,
        "private_ip": private, "gpus": None, "gpu_description": None,
    }  # fmt: skip
    base.update(extra)
    return base


def test_plan_groups_and_children():
    plan = plan_inventory([record("i1", public="1.2.3.4"), record("i2", shape="VM.GPU.A10.1", private="10.0.0.3")],
                          ["public_ip", "private_ip"])  # fmt: skip
    assert [h.name for h in plan.hosts] == ["1.2.3.4", "10.0.0.3"]
    assert plan.children == {"a10": {"shape_BM_GPU_A10_4", "shape_VM_GPU_A10_1"}}
    first = plan.hosts[0]
    assert set(first.groups) == {
        "oci_gpu", "shape_BM_GPU_A10_4", "region_us_ashburn_1", "ad_Uocm_US_ASHBURN_AD_1", "compartment_ml_team",
    }  # fmt: skip
    assert first.hostvars["gpu_count"] == 4 and first.hostvars["gpu_total_memory_gb"] == 96
    assert first.hostvars["ansible_host"] == "1.2.3.4"
    # The shape's whole row of the one shape table, for the roles and the sizing planner.
    shape = first.hostvars["oci_gpu_shape"]
    assert (shape["name"], shape["known"], shape["gpus"], shape["memory_mib"], shape["nvswitch"]) == (
        "BM.GPU.A10.4", True, 4, 23028, False,
    )  # fmt: skip
    # What the shape decides is set once on the shape group, not on every host.
    assert plan.group_vars["shape_BM_GPU_A10_4"]["gpu_count"] == 4
    assert plan.group_vars["shape_BM_GPU_A10_4"]["oci_gpu_shape"] == shape
    assert not {"gpu_count", "gpu_family", "oci_gpu_shape"} & set(first.own_vars)
    assert first.own_vars["ansible_host"] == "1.2.3.4"


def test_shape_facts_stay_on_hosts_when_hosts_of_a_shape_differ():
    # A shape the table lacks takes its GPU count from each instance: two counts, so no shared group value.
    plan = plan_inventory(
        [record("i1", shape="BM.GPU.X9.8", gpus=8), record("i2", shape="BM.GPU.X9.8", gpus=4, private="10.0.0.4"),
         record("i3", private="10.0.0.5")],
        ["private_ip"],
    )  # fmt: skip
    assert "shape_BM_GPU_X9_8" not in plan.group_vars and "shape_BM_GPU_A10_4" in plan.group_vars
    counts = {h.name: (h.own_vars.get("gpu_count"), h.hostvars["gpu_count"]) for h in plan.hosts}
    assert counts == {"10.0.0.2": (8, 8), "10.0.0.4": (4, 4), "10.0.0.5": (None, 4)}


def test_duplicate_names_fall_back_to_ocid():
    plan = plan_inventory([record("i1", name="same"), record("i2", name="same")], ["display_name"])
    assert [h.name for h in plan.hosts] == ["same", "i2"]
    assert plan.duplicates == ["i2"]


def test_hostname_falls_through_to_ocid():
    plan = plan_inventory([record("i1", private=None, name=None)], ["public_ip", "private_ip", "display_name"])
    assert plan.hosts[0].name == "i1"
    assert "ansible_host" not in plan.hosts[0].hostvars

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure logic of the oci_gpu inventory plugin: shape table, selection, naming/grouping, and the fetch step with fake
OCI clients (pagination, 429 backoff, inaccessible compartments, address joins). Stdlib + ansible only."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import (
    FetchError,
    FetchOptions,
    fetch_inventory,
    wire,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import (
    Filters,
    instance_selected,
    plan_inventory,
    sanitize_group,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_shapes import GPU_SHAPES, gpu_shape

TENANCY = "ocid1.tenancy.oc1..t"


# --- shape table ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, family, count, memory",
    [
        ("VM.GPU.A10.1", "a10", 1, 24),
        ("VM.GPU.A10.2", "a10", 2, 24),
        ("BM.GPU.A10.4", "a10", 4, 24),
        ("BM.GPU4.8", "a100", 8, 40),
        ("BM.GPU.A100-v2.8", "a100", 8, 80),
        ("BM.GPU.H100.8", "h100", 8, 80),
        ("BM.GPU.L40S-NC.4", "l40s", 4, 48),
        ("BM.GPU3.8", "v100", 8, 16),
    ],
)
def test_known_shapes(shape, family, count, memory):
    gpu = gpu_shape(shape)
    assert (gpu.family, gpu.gpus, gpu.memory_gb) == (family, count, memory)


def test_table_is_consistent():
    for name, gpu in GPU_SHAPES.items():
        assert gpu.family == sanitize_group(gpu.family).lower()
        assert int(name.rsplit(".", 1)[1]) == gpu.gpus, name  # OCI shape names end in the GPU count


def test_unknown_shapes():
    assert gpu_shape("VM.Standard.E4.Flex") is None
    assert gpu_shape("VM.Standard.E4.Flex", 0) is None
    new = gpu_shape("BM.GPU.B300.8", 8, "NVIDIA B300")
    assert (new.family, new.gpus, new.model) == ("b300", 8, "NVIDIA B300")


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


# --- fetch with fake clients ----------------------------------------------------------------------------------------
class ServiceError(Exception):
    def __init__(self, status, code):
        super().__init__(code)
        self.status, self.code, self.message = status, code, code


def to_wire(value):
    """What the SDK hands over with skip_deserialization=True: the API's JSON, camelCase keys (tag maps as they are)."""
    if isinstance(value, SimpleNamespace):
        return {
            re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key): item if key.endswith("_tags") else to_wire(item)
            for key, item in vars(value).items()
        }
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


def paged(items, limit, page, wire=False):
    start = int(page or 0)
    following = start + limit
    data = items[start:following]
    return SimpleNamespace(
        data=to_wire(data) if wire else data, next_page=str(following) if following < len(items) else None
    )


class FakeOci:
    """Compute, network and identity in one object, per region; records every call."""

    def __init__(self, page_size=2):
        self.page_size = page_size
        self.calls = []
        self.instances = {}  # (region, compartment) -> [instance]
        self.attachments = {}
        self.private_ips = {}  # (region, subnet) -> [private ip]
        self.public_ips = {}  # (region, compartment, scope, ad) -> [public ip]
        self.compartments = []
        self.denied = set()
        self.throttle = {}  # method -> remaining 429s
        self.region = None
        self.wire = True  # answer as the real SDK clients do here (JSON); False: SDK model-like objects

    # clients interface
    tenancy = TENANCY
    default_region = "r1"
    call_kwargs = {}

    def identity(self, region):
        return self

    def compute(self, region):
        return _Regional(self, region)

    network = compute

    def _hit(self, method, compartment=None):
        self.calls.append(method)
        if self.throttle.get(method):
            self.throttle[method] -= 1
            raise ServiceError(429, "TooManyRequests")
        if compartment in self.denied:
            raise ServiceError(404, "NotAuthorizedOrNotFound")

    def list_compartments(self, compartment_id, limit, page=None, compartment_id_in_subtree=False, **kw):
        self._hit("list_compartments", None if compartment_id == TENANCY else compartment_id)
        found = [c for c in self.compartments if compartment_id_in_subtree or c.compartment_id == compartment_id]
        return paged(found, self.page_size, page, self.wire)

    def get_compartment(self, compartment_id):
        self._hit("get_compartment", compartment_id)
        found = next(c for c in self.compartments if c.id == compartment_id)
        return SimpleNamespace(data=to_wire(found) if self.wire else found)


class _Regional:
    def __init__(self, fake, region):
        self.fake, self.region = fake, region

    def list_instances(self, compartment_id, limit, page=None):
        self.fake._hit("list_instances", compartment_id)
        return paged(
            self.fake.instances.get((self.region, compartment_id), []), self.fake.page_size, page, self.fake.wire
        )

    def list_vnic_attachments(self, compartment_id, limit, page=None):
        self.fake._hit("list_vnic_attachments", compartment_id)
        return paged(
            self.fake.attachments.get((self.region, compartment_id), []), self.fake.page_size, page, self.fake.wire
        )

    def list_private_ips(self, subnet_id, limit, page=None):
        self.fake._hit("list_private_ips")
        return paged(self.fake.private_ips.get((self.region, subnet_id), []), self.fake.page_size, page, self.fake.wire)

    def list_public_ips(self, scope, compartment_id, lifetime, limit, page=None, availability_domain=None):
        self.fake._hit("list_public_ips", compartment_id)
        key = (self.region, compartment_id, scope, availability_domain)
        return paged(self.fake.public_ips.get(key, []), self.fake.page_size, page, self.fake.wire)


def add_host(fake, region, comp, n, shape="VM.GPU.A10.1", public=True, state="RUNNING"):
    iid, vnic, pip = "inst%d" % n, "vnic%d" % n, "pip%d" % n
    fake.instances.setdefault((region, comp), []).append(SimpleNamespace(
        id=iid, display_name="h%d" % n, compartment_id=comp, availability_domain="AD-1", fault_domain="FD-1",
        region=region, shape=shape, lifecycle_state=state, freeform_tags={"n": str(n)}, defined_tags={},
        time_created=None, image_id="img", shape_config=SimpleNamespace(gpus=1, gpu_description="A10"),
    ))  # fmt: skip
    fake.attachments.setdefault((region, comp), []).append(SimpleNamespace(
        instance_id=iid, vnic_id=vnic, subnet_id="subnet-" + comp, lifecycle_state="ATTACHED", nic_index=0,
        time_created="t1",
    ))  # fmt: skip
    fake.private_ips.setdefault((region, "subnet-" + comp), []).append(SimpleNamespace(
        id=pip, vnic_id=vnic, ip_address="10.0.0.%d" % n, is_primary=True, hostname_label="h%d" % n,
    ))  # fmt: skip
    if public:
        fake.public_ips.setdefault((region, comp, "AVAILABILITY_DOMAIN", "AD-1"), []).append(
            SimpleNamespace(ip_address="203.0.113.%d" % n, assigned_entity_id=pip, private_ip_id=pip)
        )


def comp(cid, parent=TENANCY):
    return SimpleNamespace(id=cid, name="name-" + cid, compartment_id=parent)


@pytest.fixture(params=["wire", "models"])
def fake(request):
    fake = FakeOci()
    fake.wire = request.param == "wire"
    fake.compartments = [comp("c1"), comp("c2"), comp("c3", parent="c2")]
    for n in range(1, 8):
        add_host(fake, "r1", ["c1", "c2", "c3"][n % 3], n, public=n % 2 == 1)
    add_host(fake, "r1", "c1", 20, shape="VM.Standard.E4.Flex")  # not a GPU shape
    fake.instances[("r1", "c1")][-1].shape_config = SimpleNamespace(gpus=0, gpu_description=None)
    return fake


def fetch(fake, sleeps=None, **options):
    options.setdefault("retry_base_delay", 1.0)
    return fetch_inventory(
        fake, FetchOptions(**options), sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )


def test_fetch_joins_addresses_across_pages(fake):
    result = fetch(fake)
    by_id = {r["id"]: r for r in result.records}
    assert sorted(by_id) == sorted("inst%d" % n for n in range(1, 8))
    assert by_id["inst1"]["public_ip"] == "203.0.113.1" and by_id["inst1"]["private_ip"] == "10.0.0.1"
    assert by_id["inst2"]["public_ip"] is None and by_id["inst2"]["private_ip"] == "10.0.0.2"
    assert by_id["inst2"]["compartment_name"] == "name-c3"
    assert result.warnings == []
    assert result.calls["ListInstances"] > 4  # page size 2 forces several pages per compartment


def test_429_is_retried_with_growing_jittered_backoff(fake):
    fake.throttle = {"list_instances": 4}
    sleeps = []
    result = fetch(fake, sleeps=sleeps)
    assert len(result.records) == 7
    assert len(sleeps) == 4
    assert all(0.5 * 2**i <= s <= 1.0 * 2**i for i, s in enumerate(sorted(sleeps)))


def test_429_gives_up_after_max_retries(fake):
    fake.throttle = {"list_instances": 100}
    with pytest.raises(FetchError, match="429"):
        fetch(fake, max_retries=2)


def test_denied_compartment_warns_and_keeps_the_rest(fake):
    fake.denied = {"c2"}
    result = fetch(fake)
    assert {r["compartment_id"] for r in result.records} == {"c1", "c3"}
    assert len(result.warnings) == 1 and "name-c2" in result.warnings[0] and "404" in result.warnings[0]


def test_everything_denied_is_an_error(fake):
    fake.denied = {TENANCY, "c1", "c2", "c3"}
    fake.compartments = []
    with pytest.raises(FetchError, match="no compartment could be listed"):
        fetch(fake)


def test_subtree_below_a_non_root_compartment(fake):
    result = fetch(fake, compartments=["c2"])
    assert {r["compartment_id"] for r in result.records} == {"c2", "c3"}
    assert "list_compartments" in fake.calls
    only = fetch(fake, compartments=["c2"], compartment_subtree=False)
    assert {r["compartment_id"] for r in only.records} == {"c2"}


def test_no_per_host_calls(fake):
    for n in range(30, 90):
        add_host(fake, "r1", "c1", n)
    fake.page_size = 1000
    result = fetch(fake)
    assert len(result.records) == 67
    # identity 1 + per compartment (4 incl. root) 2 listings + subnets 3 + public ip lists (reserved + AD) 2 x 3
    assert sum(result.calls.values()) == 1 + 8 + 3 + 6


def test_wire_reads_json_with_model_names():
    inst = wire({"shapeConfig": {"gpus": 8, "gpuDescription": "H100"}, "freeformTags": {"my_tag": "x"}, "id": "i"})
    assert (inst.shape_config.gpus, inst.shape_config.gpu_description, inst.id) == (8, "H100", "i")
    assert inst.freeform_tags == {"my_tag": "x"} and inst.fault_domain is None  # left out by the service: None
    assert wire([{"isPrimary": True}, "text"])[0].is_primary is True
    assert wire(SimpleNamespace(a=1)).a == 1  # SDK models and fakes pass unchanged


def test_timestamps_read_as_the_sdk_model_wrote_them(fake):
    fake.instances[("r1", "c1")][0].time_created = "2026-11-01T10:00:00.000Z"
    records = {r["id"]: r for r in fetch(fake).records}
    assert records[fake.instances[("r1", "c1")][0].id]["time_created"] == "2026-11-01T10:00:00+00:00"

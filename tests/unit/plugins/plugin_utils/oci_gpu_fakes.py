# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fake OCI clients for the oci_gpu inventory's fetch step and plugin: compute, network and identity in one object
per region, answering as the SDK does with skip_deserialization=True (JSON) or with model-like objects, paginated,
with injectable 429s and denied compartments. Not a test file: the tests import it."""

from __future__ import annotations

import re
from types import SimpleNamespace

TENANCY = "ocid1.tenancy.oc1..t"


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

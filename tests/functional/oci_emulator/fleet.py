"""Deterministic emulated tenancies: compartments, instances, VNIC attachments, private and public IPs.

The state is plain camelCase JSON, exactly what the emulator serves (the shapes the OCI SDK models deserialize).
"""

from __future__ import annotations

import copy
from typing import Any

TENANCY = "ocid1.tenancy.oc1..emutenancy"
DEFAULT_REGIONS = ("emu-east-1", "emu-west-1")
GPU_SHAPE_CYCLE: tuple[tuple[str, int, str | None], ...] = (
    ("VM.GPU.A10.1", 1, "NVIDIA A10"),
    ("VM.GPU.A10.2", 2, "NVIDIA A10"),
    ("BM.GPU.A10.4", 4, "NVIDIA A10"),
    ("BM.GPU4.8", 8, "NVIDIA A100-SXM4-40GB"),
    ("BM.GPU.A100-v2.8", 8, "NVIDIA A100-SXM4-80GB"),
    ("BM.GPU.H100.8", 8, "NVIDIA H100 80GB HBM3"),
    ("BM.GPU.L40S.4", 4, "NVIDIA L40S"),
    ("BM.GPU.MI300X.8", 8, "AMD Instinct MI300X"),
)
TIME = "2026-11-01T10:00:00.000Z"  # the format OCI sends (and the SDK parses fast)


def ocid(kind: str, region: str, name: str) -> str:
    return "ocid1.%s.oc1.%s.emu%s" % (kind, region, name)


def compartment(cid: str, parent: str, name: str) -> dict[str, Any]:
    return {
        "id": cid,
        "compartmentId": parent,
        "name": name,
        "description": "emulated compartment " + name,
        "timeCreated": TIME,
        "lifecycleState": "ACTIVE",
        "isAccessible": True,
        "freeformTags": {},
        "definedTags": {},
    }


def empty_state(regions: tuple[str, ...] = DEFAULT_REGIONS) -> dict[str, Any]:
    return {
        "tenancy": {"id": TENANCY, "name": "emu-tenancy", "homeRegionKey": "EM0", "description": "emulated"},
        "regions": [
            {"regionKey": "EM%d" % i, "regionName": r, "status": "READY", "isHomeRegion": i == 0}
            for i, r in enumerate(regions)
        ],
        "compartments": [],
        "inaccessible": [],
        "instances": {r: [] for r in regions},
        "vnicAttachments": {r: [] for r in regions},
        "vnics": {r: {} for r in regions},
        "subnets": {r: [] for r in regions},
        "privateIps": {r: [] for r in regions},
        "publicIps": {r: [] for r in regions},
    }


def add_compartment(state: dict[str, Any], name: str, parent: str = TENANCY) -> str:
    cid = "ocid1.compartment.oc1..emu" + name.replace("-", "")
    state["compartments"].append(compartment(cid, parent, name))
    return cid


def ensure_subnet(state: dict[str, Any], region: str, comp: str) -> dict[str, Any]:
    for subnet in state["subnets"][region]:
        if subnet["compartmentId"] == comp:
            return subnet
    index = len(state["subnets"][region]) + 16 * [r["regionName"] for r in state["regions"]].index(region)
    subnet = {
        "id": ocid("subnet", region, "%s%d" % (comp[-6:], index)),
        "compartmentId": comp,
        "vcnId": ocid("vcn", region, "main"),
        "cidrBlock": "10.%d.0.0/16" % index,
        "displayName": "subnet-%d" % index,
        "lifecycleState": "AVAILABLE",
        "prohibitPublicIpOnVnic": False,
        "timeCreated": TIME,
        "_index": index,
        "_next": 2,
    }
    state["subnets"][region].append(subnet)
    return subnet


def add_vnic(state, region, inst, subnet, public, reserved, primary_vnic, created):
    n = subnet["_next"]
    subnet["_next"] += 1
    address = "10.%d.%d.%d" % (subnet["_index"], n // 250, n % 250 + 2)
    key = "%s%d" % (inst["id"][-10:], len(state["vnicAttachments"][region]))
    vnic_id = ocid("vnic", region, key)
    ad = inst["availabilityDomain"]
    state["vnicAttachments"][region].append(
        {
            "id": ocid("vnicattachment", region, key),
            "instanceId": inst["id"],
            "vnicId": vnic_id,
            "subnetId": subnet["id"],
            "compartmentId": inst["compartmentId"],
            "availabilityDomain": ad,
            "lifecycleState": "ATTACHED",
            "nicIndex": 0,
            "displayName": "vnicattachment",
            "timeCreated": created,
        }
    )
    private_id = ocid("privateip", region, key)
    label = (inst["displayName"].lower().replace(" ", "-")[:20] if primary_vnic else None) or None
    state["privateIps"][region].append(
        {
            "id": private_id,
            "ipAddress": address,
            "vnicId": vnic_id,
            "subnetId": subnet["id"],
            "compartmentId": inst["compartmentId"],
            "availabilityDomain": ad,
            "isPrimary": True,
            "hostnameLabel": label,
            "displayName": address,
            "timeCreated": created,
            "freeformTags": {},
            "definedTags": {},
        }
    )
    public_address = None
    if public:
        public_address = "198.51.%d.%d" % (n // 250 + subnet["_index"] * 8, n % 250 + 2)
        state["publicIps"][region].append(
            {
                "id": ocid("publicip", region, key),
                "ipAddress": public_address,
                "compartmentId": inst["compartmentId"],
                "availabilityDomain": None if reserved else ad,
                "scope": "REGION" if reserved else "AVAILABILITY_DOMAIN",
                "lifetime": "RESERVED" if reserved else "EPHEMERAL",
                "lifecycleState": "ASSIGNED",
                "assignedEntityId": private_id,
                "assignedEntityType": "PRIVATE_IP",
                "privateIpId": private_id,
                "displayName": public_address,
                "timeCreated": created,
                "freeformTags": {},
                "definedTags": {},
            }
        )
    state["vnics"][region][vnic_id] = {
        "id": vnic_id,
        "compartmentId": inst["compartmentId"],
        "availabilityDomain": ad,
        "subnetId": subnet["id"],
        "privateIp": address,
        "publicIp": public_address,
        "isPrimary": primary_vnic,
        "hostnameLabel": label,
        "lifecycleState": "AVAILABLE",
        "macAddress": "02:00:17:00:%02x:%02x" % (n // 256 % 256, n % 256),
        "displayName": inst["displayName"],
        "timeCreated": created,
        "freeformTags": {},
        "definedTags": {},
    }


def add_instance(
    state: dict[str, Any],
    region: str,
    comp: str,
    name: str,
    shape: str = "VM.GPU.A10.1",
    gpus: int = 1,
    gpu_description: str | None = "NVIDIA A10",
    lifecycle: str = "RUNNING",
    ad_index: int = 1,
    public: bool = True,
    reserved: bool = False,
    secondary_vnic: bool = False,
    freeform: dict[str, str] | None = None,
    defined: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    index = sum(len(v) for v in state["instances"].values())
    ad = "Emu:%s-AD-%d" % (region.upper(), ad_index)
    inst = {
        "id": ocid("instance", region, "%06d" % index),
        "compartmentId": comp,
        "availabilityDomain": ad,
        "faultDomain": "FAULT-DOMAIN-%d" % (1 + index % 3),
        "displayName": name,
        "region": region,
        "shape": shape,
        "lifecycleState": lifecycle,
        "timeCreated": TIME,
        "imageId": ocid("image", region, "ubuntu2204"),
        "launchMode": "NATIVE",
        "freeformTags": dict(freeform or {}),
        "definedTags": copy.deepcopy(defined or {}),
        "metadata": {},
        "extendedMetadata": {},
        "sourceDetails": {"sourceType": "image", "imageId": ocid("image", region, "ubuntu2204")},
        "shapeConfig": {
            "ocpus": 15.0,
            "memoryInGBs": 240.0,
            "gpus": gpus,
            "gpuDescription": gpu_description,
            "networkingBandwidthInGbps": 24.0,
            "maxVnicAttachments": 24,
        },
    }
    state["instances"][region].append(inst)
    subnet = ensure_subnet(state, region, comp)
    add_vnic(state, region, inst, subnet, public, reserved, True, "2026-11-01T10:00:01.000Z")
    if secondary_vnic:
        add_vnic(state, region, inst, subnet, False, False, False, "2026-11-01T11:00:00.000Z")
    return inst


def add_image(
    state: dict[str, Any],
    region: str,
    name: str,
    operating_system: str,
    version: str,
    created: str,
    shapes: list[str] | None = None,
) -> dict[str, Any]:
    """A platform image (compartmentId null, as OCI's own images); `shapes` limits the shapes it lists for."""
    image = {
        "id": ocid("image", region, name.lower().replace("-", "").replace(".", "")),
        "compartmentId": None,
        "displayName": name,
        "operatingSystem": operating_system,
        "operatingSystemVersion": version,
        "lifecycleState": "AVAILABLE",
        "timeCreated": created,
        "launchMode": "NATIVE",
        "sizeInMBs": 47694,
        "billableSizeInGBs": 4,
        "freeformTags": {},
        "definedTags": {},
        "_shapes": list(shapes or []),
    }
    state.setdefault("images", {}).setdefault(region, []).append(image)
    return image


def add_platform_images(state: dict[str, Any], region: str) -> None:
    """Ubuntu 22.04 (two builds and a newer Minimal build for CPU shapes only), Ubuntu 24.04 and an Oracle Linux 8 GPU
    build, named as OCI names them."""
    add_image(
        state, region, "Canonical-Ubuntu-22.04-2026.09.30-0", "Canonical Ubuntu", "22.04", "2026-10-02T10:00:00.000Z"
    )
    add_image(
        state, region, "Canonical-Ubuntu-22.04-2026.10.30-0", "Canonical Ubuntu", "22.04", "2026-11-01T09:00:00.000Z"
    )
    add_image(state, region, "Canonical-Ubuntu-22.04-Minimal-2026.10.30-0", "Canonical Ubuntu", "22.04",
              "2026-11-02T09:00:00.000Z", shapes=["VM.Standard.E4.Flex"])  # fmt: skip
    add_image(
        state, region, "Canonical-Ubuntu-24.04-2026.10.30-0", "Canonical Ubuntu", "24.04", "2026-11-01T08:00:00.000Z"
    )
    add_image(state, region, "Oracle-Linux-8.10-Gen2-GPU-2026.10.30-0", "Oracle Linux", "8", "2026-11-01T07:00:00.000Z")


def build_fleet(
    n_instances: int, n_compartments: int = 5, regions: tuple[str, ...] = DEFAULT_REGIONS, nested: bool = True
) -> dict[str, Any]:
    """n_instances spread round-robin over regions and compartments; mostly GPU shapes of every family, with some
    CPU-only and STOPPED instances (filtered out by default), private-only, reserved-IP and two-VNIC instances."""
    state = empty_state(regions)
    comps: list[str] = []
    for c in range(n_compartments):
        parent = comps[-1] if nested and c == n_compartments - 1 and comps else TENANCY
        comps.append(add_compartment(state, "team-%d" % c, parent))
    for i in range(n_instances):
        region = regions[i % len(regions)]
        comp = comps[(i // len(regions)) % len(comps)]
        desc: str | None
        shape, gpus, desc = GPU_SHAPE_CYCLE[i % len(GPU_SHAPE_CYCLE)]
        if i % 10 == 9:
            shape, gpus, desc = "VM.Standard.E4.Flex", 0, None
        add_instance(
            state,
            region,
            comp,
            "gpu-%05d" % i,
            shape=shape,
            gpus=gpus,
            gpu_description=desc,
            lifecycle="STOPPED" if i % 25 == 24 else "RUNNING",
            ad_index=1 + (i // 7) % 3,
            public=i % 3 != 2,
            reserved=i % 7 == 3,
            secondary_vnic=i % 11 == 5,
            freeform={"team": "team-%d" % (i % 4), "vllm": "true" if i % 2 == 0 else "false"},
            defined={"Ops": {"env": "prod" if i % 5 else "dev"}},
        )
    return state

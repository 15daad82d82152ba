"""The emulator's write side of Compute, and the listings a launch needs: LaunchInstance, TerminateInstance, the
lifecycle an instance goes through (PROVISIONING -> RUNNING, TERMINATING -> TERMINATED after a number of GetInstance
calls), ListImages, ListAvailabilityDomains, and injected failures (per-AD "Out of host capacity.", quota/limit).

Error forms copy the service's (see plugins/module_utils/_oci_provision.py for the sources): capacity is HTTP 500
InternalError "Out of host capacity."; limits and quotas are HTTP 400 LimitExceeded / QuotaExceeded.
"""

from __future__ import annotations

import threading
from typing import Any

from .fleet import GPU_SHAPE_CYCLE, TIME, add_vnic, ocid

GPU_FACTS = {shape: (gpus, description) for shape, gpus, description in GPU_SHAPE_CYCLE}
NOT_FOUND = "Authorization failed or requested resource not found."


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def availability_domains(state: dict[str, Any], region: str) -> list[str]:
    """The region's AD names: state["availabilityDomains"][region], else the three names fleet.add_instance uses."""
    configured = (state.get("availabilityDomains") or {}).get(region)
    return list(configured or ["Emu:%s-AD-%d" % (region.upper(), i) for i in (1, 2, 3)])


class ComputeWrites:
    def __init__(self, state: dict[str, Any], lock: threading.Lock):
        self.state = state
        self.lock = lock
        self.capacity_full: dict[str, set[str]] = {}  # region -> ADs answering "Out of host capacity."
        self.quota: tuple[str, str] | None = None  # (code, message) for every launch
        self.provisioning_polls = 2  # GetInstance calls an instance stays PROVISIONING / TERMINATING
        self.pending: dict[str, list[Any]] = {}  # instance id -> [GetInstance calls left, next state]
        self.terminations: dict[str, bool] = {}  # instance id -> preserveBootVolume asked
        self.launched: list[dict[str, Any]] = []  # the LaunchInstanceDetails bodies accepted

    # --- injected failures ---------------------------------------------------------------------------------
    def fail_capacity(self, region: str, ads: list[str]) -> None:
        with self.lock:
            self.capacity_full[region] = set(ads)

    def fail_quota(self, code: str | None, message: str = "") -> None:
        with self.lock:
            self.quota = (code, message) if code else None

    # --- listings ------------------------------------------------------------------------------------------
    def list_availability_domains(self, region: str, compartment: str) -> list[dict[str, Any]]:
        return [
            {"name": name, "id": ocid("availabilitydomain", region, str(i)), "compartmentId": compartment}
            for i, name in enumerate(availability_domains(self.state, region), start=1)
        ]

    def list_images(self, region: str, query: dict[str, str]) -> list[dict[str, Any]]:
        found = []
        for image in (self.state.get("images") or {}).get(region, []):
            if query.get("operatingSystem") and image["operatingSystem"] != query["operatingSystem"]:
                continue
            if (
                query.get("operatingSystemVersion")
                and image["operatingSystemVersion"] != query["operatingSystemVersion"]
            ):
                continue
            if query.get("shape") and image.get("_shapes") and query["shape"] not in image["_shapes"]:
                continue
            if query.get("lifecycleState") and image["lifecycleState"] != query["lifecycleState"]:
                continue
            found.append({k: v for k, v in image.items() if not k.startswith("_")})
        key = "displayName" if query.get("sortBy") == "DISPLAYNAME" else "timeCreated"
        return sorted(found, key=lambda i: i[key], reverse=query.get("sortOrder", "DESC") == "DESC")

    # --- lifecycle -----------------------------------------------------------------------------------------
    def advance(self, inst: dict[str, Any], region: str) -> None:
        """One GetInstance of `inst`: a pending transition moves one step."""
        with self.lock:
            step = self.pending.get(inst["id"])
            if step is None:
                return
            step[0] -= 1
            if step[0] > 0:
                return
            del self.pending[inst["id"]]
            inst["lifecycleState"] = step[1]
            if step[1] == "TERMINATED":
                for attachment in self.state["vnicAttachments"][region]:
                    if attachment["instanceId"] == inst["id"]:
                        attachment["lifecycleState"] = "DETACHED"

    # --- writes --------------------------------------------------------------------------------------------
    def launch(self, region: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ServiceError(400, "InvalidParameter", "LaunchInstanceDetails must be a JSON object")
        for field in ("availabilityDomain", "compartmentId", "shape"):
            if not body.get(field):
                raise ServiceError(400, "MissingParameter", "Missing %s" % field)
        source = body.get("sourceDetails") or {}
        subnet_id = (body.get("createVnicDetails") or {}).get("subnetId") or body.get("subnetId")
        if source.get("sourceType") != "image" or not source.get("imageId"):
            raise ServiceError(400, "InvalidParameter", "sourceDetails must name an image")
        size = source.get("bootVolumeSizeInGBs")
        if size is not None and not 50 <= int(size) <= 32768:
            raise ServiceError(400, "InvalidParameter", "bootVolumeSizeInGBs must be between 50 and 32768")
        ad = body["availabilityDomain"]
        if ad not in availability_domains(self.state, region):
            raise ServiceError(400, "InvalidParameter", "Invalid availabilityDomain " + ad)
        images = {i["id"] for i in (self.state.get("images") or {}).get(region, [])}
        if source["imageId"] not in images:
            raise ServiceError(404, "NotAuthorizedOrNotFound", NOT_FOUND)
        subnet = next((s for s in self.state["subnets"][region] if s["id"] == subnet_id), None)
        if subnet is None:
            raise ServiceError(404, "NotAuthorizedOrNotFound", NOT_FOUND)
        with self.lock:
            if self.quota:
                raise ServiceError(400, self.quota[0], self.quota[1])
            if ad in self.capacity_full.get(region, set()):
                raise ServiceError(500, "InternalError", "Out of host capacity.")
            self.launched.append(body)
            inst = self._new_instance(region, body, subnet)
            self.pending[inst["id"]] = [self.provisioning_polls, "RUNNING"]
        return inst

    def _new_instance(self, region: str, body: dict[str, Any], subnet: dict[str, Any]) -> dict[str, Any]:
        index = sum(len(v) for v in self.state["instances"].values())
        gpus, description = GPU_FACTS.get(body["shape"], (0, None))
        inst = {
            "id": ocid("instance", region, "%06d" % index),
            "compartmentId": body["compartmentId"],
            "availabilityDomain": body["availabilityDomain"],
            "faultDomain": body.get("faultDomain") or "FAULT-DOMAIN-%d" % (1 + index % 3),
            "displayName": body.get("displayName") or "instance%06d" % index,
            "region": region,
            "shape": body["shape"],
            "lifecycleState": "PROVISIONING",
            "timeCreated": TIME,
            "imageId": body["sourceDetails"]["imageId"],
            "launchMode": "NATIVE",
            "freeformTags": dict(body.get("freeformTags") or {}),
            "definedTags": dict(body.get("definedTags") or {}),
            "metadata": dict(body.get("metadata") or {}),
            "extendedMetadata": {},
            "sourceDetails": dict(body["sourceDetails"]),
            "shapeConfig": {"ocpus": 15.0, "memoryInGBs": 240.0, "gpus": gpus, "gpuDescription": description},
        }
        self.state["instances"][region].append(inst)
        public = (body.get("createVnicDetails") or {}).get("assignPublicIp", True)
        add_vnic(self.state, region, inst, subnet, bool(public), False, True, TIME)
        return inst

    def terminate(self, region: str, instance_id: str, preserve_boot_volume: bool) -> None:
        for inst in self.state["instances"][region]:
            if inst["id"] == instance_id and inst["lifecycleState"] != "TERMINATED":
                with self.lock:
                    inst["lifecycleState"] = "TERMINATING"
                    self.pending[instance_id] = [self.provisioning_polls, "TERMINATED"]
                    self.terminations[instance_id] = preserve_boot_volume
                return
        raise ServiceError(404, "NotAuthorizedOrNotFound", NOT_FOUND)

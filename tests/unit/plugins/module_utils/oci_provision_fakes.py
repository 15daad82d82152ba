# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A fake OCI API for the gpu_instances logic: the adapter's methods over in-memory instances, with scripted errors.

Errors carry status/code/message as the SDK's ServiceError does. Instances become RUNNING after `polls` GetInstance
calls, TERMINATED likewise after a terminate.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class FakeServiceError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


OUT_OF_CAPACITY = (500, "InternalError", "Out of host capacity.")
THROTTLED = (429, "TooManyRequests", "Too many requests for the tenant")


class FakeApi:
    def __init__(self, ads: Optional[List[str]] = None, polls: int = 1):
        self.ads = ads or ["AD-1", "AD-2", "AD-3"]
        self.polls = polls
        self.instances: List[Dict[str, Any]] = []
        self.images = [
            {"id": "ocid1.image.oc1.r.old", "timeCreated": "2026-01-01T00:00:00Z", "lifecycleState": "AVAILABLE"},
            {"id": "ocid1.image.oc1.r.new", "timeCreated": "2026-06-01T00:00:00Z", "lifecycleState": "AVAILABLE"},
        ]
        self.calls: List[str] = []
        self.launch_errors: Dict[str, List[tuple]] = {}  # AD -> errors raised by the next launches there
        self.errors: Dict[str, List[tuple]] = {}  # method -> errors raised by its next calls
        self.launched: List[Dict[str, Any]] = []
        self.terminated: List[tuple] = []
        self._pending: Dict[str, List[Any]] = {}

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        queue = self.errors.get(name)
        if queue:
            raise FakeServiceError(*queue.pop(0))

    def add(self, name: str, group: str, state: str = "RUNNING", ad: str = "AD-1", shape: str = "VM.GPU.A10.1") -> Dict:
        inst = {
            "id": "ocid1.instance.oc1.r.%d" % len(self.instances),
            "compartmentId": "ocid1.compartment.oc1..c",
            "displayName": name,
            "freeformTags": {"oci_gpu_vllm_group": group} if group else {},
            "lifecycleState": state,
            "availabilityDomain": ad,
            "faultDomain": "FAULT-DOMAIN-1",
            "shape": shape,
            "timeCreated": "2026-01-01T00:00:%02dZ" % len(self.instances),
        }
        self.instances.append(inst)
        return inst

    def list_instances(self, compartment_id: str) -> List[Dict[str, Any]]:
        self._enter("list_instances")
        return [dict(i) for i in self.instances if i["compartmentId"] == compartment_id]

    def list_images(self, compartment_id: str, os_name: str, version: str, shape: str) -> List[Dict[str, Any]]:
        self._enter("list_images")
        return list(self.images)

    def list_availability_domains(self, compartment_id: str) -> List[Dict[str, Any]]:
        self._enter("list_availability_domains")
        return [{"name": ad} for ad in self.ads]

    def launch_instance(self, details: Dict[str, Any]) -> Dict[str, Any]:
        self._enter("launch_instance")
        queue = self.launch_errors.get(details["availabilityDomain"])
        if queue:
            raise FakeServiceError(*(queue.pop(0) if len(queue) > 1 else queue[0]))
        self.launched.append(details)
        inst = self.add(details["displayName"], details["freeformTags"].get("oci_gpu_vllm_group", ""), "PROVISIONING",
                        details["availabilityDomain"], details["shape"])  # fmt: skip
        self._pending[inst["id"]] = [self.polls, "RUNNING"]
        return dict(inst)

    def get_instance(self, instance_id: str) -> Dict[str, Any]:
        self._enter("get_instance")
        inst = next(i for i in self.instances if i["id"] == instance_id)
        step = self._pending.get(instance_id)
        if step is not None:
            step[0] -= 1
            if step[0] <= 0:
                inst["lifecycleState"] = step[1]
                del self._pending[instance_id]
        return dict(inst)

    def terminate_instance(self, instance_id: str, preserve_boot_volume: bool) -> None:
        self._enter("terminate_instance")
        self.terminated.append((instance_id, preserve_boot_volume))
        inst = next(i for i in self.instances if i["id"] == instance_id)
        inst["lifecycleState"] = "TERMINATING"
        self._pending[instance_id] = [self.polls, "TERMINATED"]

    def list_vnic_attachments(self, compartment_id: str, instance_id: str) -> List[Dict[str, Any]]:
        self._enter("list_vnic_attachments")
        return [{"vnicId": "vnic-" + instance_id, "lifecycleState": "ATTACHED", "timeCreated": "t"}]

    def get_vnic(self, vnic_id: str) -> Dict[str, Any]:
        self._enter("get_vnic")
        return {"publicIp": "198.51.100.%d" % int(vnic_id.rsplit(".", 1)[1]), "privateIp": "10.0.0.9"}


class Clock:
    """An injectable clock whose sleep advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

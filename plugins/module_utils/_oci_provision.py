# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ensure a group of OCI GPU instances exists and is RUNNING (or is gone); logic of the oci_gpu.vllm.gpu_instances
module. Nothing here knows about AnsibleModule: every outcome is a result dict or a ProvisionError subclass carrying a
message and the partial result. The OCI API is reached through a small adapter (`_oci_provision_sdk.OciApi` on the real
SDK, fakes in the unit tests) that returns the API's camelCase JSON.

Identity of a group member: display name `<name>-<index>` (index 1..count) AND the freeform tag GROUP_TAG = <name>,
in one compartment; instances TERMINATING/TERMINATED do not count.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

GROUP_TAG = "oci_gpu_vllm_group"
DEFAULT_FREEFORM_TAGS = {"vllm": "true"}  # what inventory/oci/tenancy.oci_gpu.yml selects
BOOT_VOLUME_MIN_GB = 50  # OCI's smallest custom boot volume
BOOT_VOLUME_MAX_GB = 32768  # OCI's largest boot volume
DEFAULT_BOOT_VOLUME_GB = 200  # the seed's boot volume
DEFAULT_SHAPE = "VM.GPU.A10.1"
DEFAULT_OS = "Canonical Ubuntu"
DEFAULT_OS_VERSION = "22.04"
GONE_STATES = ("TERMINATING", "TERMINATED")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,40}$")
_OCID = re.compile(r"^ocid1\.[a-z0-9]+\.[a-z0-9-]*\.[a-z0-9-]*\.[A-Za-z0-9._-]+$")
_SHAPE = re.compile(r"^(VM|BM)\.[A-Za-z0-9.-]+$")
_SSH_KEY = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?$")


class ProvisionError(Exception):
    """An outcome the user must act on; `kind` tells the caller which (bad_input, capacity, quota, ...)."""

    kind = "error"

    def __init__(self, msg: str, result: Optional[Dict[str, Any]] = None):
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


class InvalidRequest(ProvisionError):
    kind = "bad_input"


class CapacityExhausted(ProvisionError):
    kind = "capacity"


class QuotaExceeded(ProvisionError):
    kind = "quota"


class ServiceFailure(ProvisionError):
    kind = "service"


class WaitTimeout(ProvisionError):
    kind = "timeout"


# ---------------------------------------------------------------- validation (before any call)


def check_shape(shape: Any, known_shapes: Iterable[str]) -> str:
    """The shape if the collection's shape table knows it (the table is passed in: modules cannot import it)."""
    known = sorted(known_shapes)
    if not isinstance(shape, str) or shape not in known:
        raise InvalidRequest("shape=%r is not a known OCI GPU shape: use one of %s" % (shape, ", ".join(known)))
    return shape


def validate(params: Dict[str, Any]) -> Dict[str, Any]:
    """The module's parameters checked and normalised; InvalidRequest names the first offending value."""
    p = dict(params)
    name = p.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            "name=%r is not allowed: start with a letter, then letters, digits, '-' or '_', at most 41 characters "
            "(instances are named <name>-<index>)" % (name,)
        )
    _ocid("compartment_id", p.get("compartment_id"), "compartment")
    if p.get("state", "present") == "absent":
        return p
    count = p.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidRequest(
            "count=%r is not allowed with state=present: give 1 or more (to remove the group use state=absent)"
            % (count,)
        )
    shape = p.get("shape")
    if not isinstance(shape, str) or not _SHAPE.match(shape):
        raise InvalidRequest("shape=%r is not an OCI shape name (e.g. VM.GPU.A10.1, BM.GPU.H100.8)" % (shape,))
    if not p.get("subnet_id"):
        raise InvalidRequest("subnet_id is required with state=present: the OCID of the subnet the hosts join")
    _ocid("subnet_id", p["subnet_id"], "subnet")
    if p.get("image_id"):
        _ocid("image_id", p["image_id"], "image")
    size = p.get("boot_volume_size_gb")
    if not isinstance(size, int) or not BOOT_VOLUME_MIN_GB <= size <= BOOT_VOLUME_MAX_GB:
        raise InvalidRequest(
            "boot_volume_size_gb=%r is not allowed: give %d to %d (GB; the seed uses %d, the vLLM image and model "
            "weights need room)" % (size, BOOT_VOLUME_MIN_GB, BOOT_VOLUME_MAX_GB, DEFAULT_BOOT_VOLUME_GB)
        )
    key = (p.get("ssh_public_key") or "").strip()
    if not key:
        raise InvalidRequest("ssh_public_key is required with state=present: the public key Ansible logs in with")
    for line in key.splitlines():
        if not _SSH_KEY.match(line.strip()):
            raise InvalidRequest(
                "ssh_public_key is not an OpenSSH public key line (ssh-ed25519 AAAA..., ssh-rsa AAAA...): %r"
                % (line.strip()[:40],)
            )
    p["ssh_public_key"] = key
    tags = p.get("freeform_tags")
    tags = dict(DEFAULT_FREEFORM_TAGS if tags is None else tags)
    if GROUP_TAG in tags and tags[GROUP_TAG] != name:
        raise InvalidRequest("freeform_tags.%s is set by the module (to the name %r)" % (GROUP_TAG, name))
    # YAML's unquoted true would become "True", which the inventory's `vllm: "true"` does not select
    p["freeform_tags"] = dict((str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in tags.items())
    p["freeform_tags"][GROUP_TAG] = name
    return p


def _ocid(option: str, value: Any, kind: str) -> None:
    allowed = (kind, "tenancy") if kind == "compartment" else (kind,)
    if not isinstance(value, str) or not _OCID.match(value) or value.split(".")[1] not in allowed:
        raise InvalidRequest("%s=%r is not a %s OCID (ocid1.%s.oc1...)" % (option, value, kind, kind))


# ---------------------------------------------------------------- errors the service answers


def is_out_of_capacity(exc: BaseException) -> bool:
    # LaunchInstance without room answers HTTP 500, code InternalError, message "Out of host capacity." (seen through
    # the SDK as {'code': 'InternalError', 'message': 'Out of host capacity.', 'status': 500} in
    # clusterinthecloud/terraform#29, and as "500-InternalError, Out of host capacity." in jpetazzo/ampernetacle#23,
    # #40 and #54). Matched on status and message: InternalError alone also means other server faults.
    return getattr(exc, "status", None) == 500 and "out of host capacity" in str(_message(exc)).lower()


def is_quota(exc: BaseException) -> bool:
    # Service limits answer HTTP 400 LimitExceeded ("The following service limits were exceeded: ... Request a
    # service limit increase from the service limits page in the console.", mohankumarpaluru/
    # oracle-freetier-instance-creation#15); compartment quotas answer 400 QuotaExceeded (both handled on launch by
    # dstackai/dstack PR #1252). Neither clears by trying another availability domain of the same tenancy.
    return getattr(exc, "status", None) == 400 and getattr(exc, "code", None) in ("LimitExceeded", "QuotaExceeded")


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status is None:
        return "%s: %s" % (type(exc).__name__, exc)
    return "HTTP %s %s: %s" % (status, getattr(exc, "code", "") or "", _message(exc))


# ---------------------------------------------------------------- the provisioner


class Provisioner:
    """One run of the module: `ensure()` for state=present, `remove()` for state=absent."""

    def __init__(
        self,
        api: Any,
        params: Dict[str, Any],
        check_mode: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_retries: int = 6,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        poll_interval: float = 5.0,
    ):
        self.api = api
        self.p = params
        self.check_mode = check_mode
        self.sleep = sleep
        self.clock = clock
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.poll_interval = poll_interval
        self.retries = 0  # 429 answers waited out
        self.full_ads: List[str] = []
        self._unlaunched = 0  # instances of this run not launched yet (what a quota request must cover)

    # -- calls with throttling handled (core operations do not retry 429 by themselves in oci 2.189)
    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                if getattr(exc, "status", None) != 429 or attempt >= self.max_retries:
                    raise
                delay = min(self.retry_max_delay, self.retry_base_delay * 2**attempt)
                self.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
                attempt += 1
                self.retries += 1

    def members(self) -> Dict[str, Dict[str, Any]]:
        """display name -> instance, for the group's instances that are not going away."""
        found: Dict[str, Dict[str, Any]] = {}
        name = self.p["name"]
        for inst in self.call(self.api.list_instances, self.p["compartment_id"]):
            tags = inst.get("freeformTags") or {}
            if tags.get(GROUP_TAG) != name or inst.get("lifecycleState") in GONE_STATES:
                continue
            previous = found.get(inst["displayName"])
            if previous is None or inst.get("timeCreated", "") > previous.get("timeCreated", ""):
                found[inst["displayName"]] = inst
        return found

    # -- state=present
    def ensure(self) -> Dict[str, Any]:
        members = self.members()
        wanted = ["%s-%d" % (self.p["name"], i) for i in range(1, self.p["count"] + 1)]
        stopped = [n for n in wanted if n in members and members[n].get("lifecycleState") not in _LIVE_STATES]
        if stopped:
            states = ", ".join("%s is %s" % (n, members[n].get("lifecycleState")) for n in stopped)
            raise ServiceFailure(
                "group %r has instances that are not running (%s): start them in the console or terminate them "
                "(state=absent), then run again" % (self.p["name"], states),
                self._result(members, [], wanted),
            )
        missing = [n for n in wanted if n not in members]
        others = sorted(n for n in members if n not in wanted)
        launched: List[str] = []
        plan: Dict[str, Any] = {"image_id": None, "availability_domains": []}
        if missing:
            plan["image_id"] = self.image_id()
            plan["availability_domains"] = self.availability_domains()
        if missing and not self.check_mode:
            for display_name in missing:
                self._unlaunched = len(missing) - len(launched)
                try:
                    members[display_name] = self.launch(display_name, plan)
                except ProvisionError as exc:
                    exc.result = self._result(members, launched, wanted, others, plan)
                    raise
                launched.append(display_name)
        if self.p.get("wait", True) and not self.check_mode:
            try:
                self.wait_running(members, wanted)
            except ProvisionError as exc:
                exc.result = self._result(members, launched, wanted, others, plan)
                raise
        result = self._result(members, launched, wanted, others, plan)
        result["changed"] = bool(missing)
        if self.check_mode:
            result["would_launch"] = missing
        return result

    def image_id(self) -> str:
        if self.p.get("image_id"):
            return str(self.p["image_id"])
        os_name = self.p.get("image_os") or DEFAULT_OS
        version = self.p.get("image_os_version") or DEFAULT_OS_VERSION
        images = self.call(self.api.list_images, self.p["compartment_id"], os_name, version, self.p["shape"])
        images = [i for i in images if i.get("lifecycleState", "AVAILABLE") == "AVAILABLE"]
        if not images:
            raise InvalidRequest(
                "no image of %s %s is available for shape %s: give image_os/image_os_version of a platform image "
                "that supports the shape, or image_id" % (os_name, version, self.p["shape"])
            )
        return str(max(images, key=lambda i: i.get("timeCreated") or "")["id"])

    def availability_domains(self) -> List[str]:
        """The order tried on "Out of host capacity": the configured list, else the region's domains by name (OCI says
        not to depend on ListAvailabilityDomains' order)."""
        configured = list(self.p.get("availability_domains") or [])
        known = sorted(ad["name"] for ad in self.call(self.api.list_availability_domains, self.p["compartment_id"]))
        if not configured:
            return known
        unknown = [ad for ad in configured if ad not in known]
        if unknown:
            raise InvalidRequest(
                "availability_domains: %s not in this region: use %s" % (", ".join(unknown), ", ".join(known))
            )
        return configured

    def launch(self, display_name: str, plan: Dict[str, Any]) -> Dict[str, Any]:
        """Launch one instance, trying each availability domain in order until one has capacity."""
        tried_full: List[str] = []
        for ad in plan["availability_domains"]:
            if ad in self.full_ads:  # full a moment ago for an earlier instance of this run
                tried_full.append(ad)
                continue
            try:
                inst = self.call(self.api.launch_instance, self.launch_details(display_name, ad, plan["image_id"]))
            except Exception as exc:
                if is_out_of_capacity(exc):
                    self.full_ads.append(ad)
                    tried_full.append(ad)
                    continue
                if is_quota(exc):
                    raise QuotaExceeded(
                        "OCI refused %s (%s) with %s. Ask for more in the console (Governance > Limits, Quotas and "
                        "Usage): room for %d more %s instance(s) in this region (count=%d), or lower count"
                        % (
                            display_name,
                            self.p["shape"],
                            describe(exc),
                            self._unlaunched,
                            self.p["shape"],
                            self.p["count"],
                        )
                    ) from None
                raise ServiceFailure("launching %s failed: %s" % (display_name, describe(exc))) from None
            inst = dict(inst, _launched=True, _full_ads=list(tried_full))
            return inst
        raise CapacityExhausted(
            "no capacity for %s (%s) in any availability domain: tried %s, every one answered "
            '"Out of host capacity."; try later, another region or another shape'
            % (display_name, self.p["shape"], ", ".join(plan["availability_domains"]) or "(none listed)")
        )

    def launch_details(self, display_name: str, ad: str, image_id: str) -> Dict[str, Any]:
        import base64

        metadata = {"ssh_authorized_keys": self.p["ssh_public_key"]}
        if self.p.get("user_data"):
            metadata["user_data"] = base64.b64encode(self.p["user_data"].encode("utf-8")).decode("ascii")
        return {
            "availabilityDomain": ad,
            "compartmentId": self.p["compartment_id"],
            "displayName": display_name,
            "shape": self.p["shape"],
            "freeformTags": dict(self.p["freeform_tags"]),
            "metadata": metadata,
            "createVnicDetails": {
                "subnetId": self.p["subnet_id"],
                "assignPublicIp": bool(self.p.get("assign_public_ip", True)),
                "displayName": display_name,
            },
            "sourceDetails": {
                "sourceType": "image",
                "imageId": image_id,
                "bootVolumeSizeInGBs": self.p["boot_volume_size_gb"],
            },
        }

    def wait_running(self, members: Dict[str, Dict[str, Any]], names: Sequence[str]) -> None:
        deadline = self.clock() + float(self.p.get("wait_timeout", 1200))
        pending = [n for n in names if members[n].get("lifecycleState") != "RUNNING"]
        while pending:
            for name in list(pending):
                fresh = self.call(self.api.get_instance, members[name]["id"])
                members[name] = dict(members[name], **fresh)
                state = fresh.get("lifecycleState")
                if state == "RUNNING":
                    pending.remove(name)
                elif state not in _LIVE_STATES:
                    raise ServiceFailure("%s (%s) went %s while starting" % (name, fresh.get("id"), state))
            if not pending:
                break
            if self.clock() >= deadline:
                raise WaitTimeout(
                    "%s not RUNNING after %ss (still %s): raise wait_timeout or look at the console"
                    % (", ".join(pending), self.p.get("wait_timeout"), members[pending[0]].get("lifecycleState"))
                )
            self.sleep(self.poll_interval)

    def _result(self, members, launched, wanted, others=(), plan=None) -> Dict[str, Any]:
        instances = []
        for name in wanted:
            inst = members.get(name)
            if inst is None:
                continue
            instances.append(self.describe_instance(name, inst))
        return {
            "name": self.p["name"],
            "instances": instances,
            "launched": list(launched),
            "availability_domains_full": list(self.full_ads),
            "availability_domain_order": list((plan or {}).get("availability_domains") or []),
            "image_id": (plan or {}).get("image_id"),
            "not_managed": list(others),
            "retries": self.retries,
        }

    def describe_instance(self, name: str, inst: Dict[str, Any]) -> Dict[str, Any]:
        entry = {
            "name": name,
            "id": inst.get("id"),
            "shape": inst.get("shape"),
            "availability_domain": inst.get("availabilityDomain"),
            "fault_domain": inst.get("faultDomain"),
            "lifecycle_state": inst.get("lifecycleState"),
            "launched": bool(inst.get("_launched")),
            "availability_domains_full": list(inst.get("_full_ads") or []),
            "public_ip": None,
            "private_ip": None,
        }
        if inst.get("lifecycleState") == "RUNNING" and not self.check_mode:
            entry.update(self.addresses(inst))
        return entry

    def addresses(self, inst: Dict[str, Any]) -> Dict[str, Any]:
        attachments = self.call(self.api.list_vnic_attachments, inst["compartmentId"], inst["id"])
        attached = sorted(
            (a for a in attachments if a.get("lifecycleState") == "ATTACHED"), key=lambda a: a.get("timeCreated", "")
        )
        if not attached:
            return {}
        vnic = self.call(self.api.get_vnic, attached[0]["vnicId"])
        return {"public_ip": vnic.get("publicIp"), "private_ip": vnic.get("privateIp")}

    # -- state=absent
    def remove(self) -> Dict[str, Any]:
        members = self.members()
        names = sorted(members)
        if not self.check_mode:
            for name in names:
                self.call(
                    self.api.terminate_instance, members[name]["id"], bool(self.p.get("preserve_boot_volume", False))
                )
            if self.p.get("wait", True):
                self.wait_terminated(members, names)
        return {
            "changed": bool(names),
            "name": self.p["name"],
            "terminated": [{"name": n, "id": members[n]["id"]} for n in names],
            "preserve_boot_volume": bool(self.p.get("preserve_boot_volume", False)),
            "retries": self.retries,
        }

    def wait_terminated(self, members: Dict[str, Dict[str, Any]], names: Sequence[str]) -> None:
        deadline = self.clock() + float(self.p.get("wait_timeout", 1200))
        pending = list(names)
        while pending:
            for name in list(pending):
                if self.call(self.api.get_instance, members[name]["id"]).get("lifecycleState") == "TERMINATED":
                    pending.remove(name)
            if not pending:
                break
            if self.clock() >= deadline:
                raise WaitTimeout("%s not TERMINATED after %ss" % (", ".join(pending), self.p.get("wait_timeout")))
            self.sleep(self.poll_interval)


_LIVE_STATES = ("PROVISIONING", "STARTING", "RUNNING", "CREATING_IMAGE", "MOVING")


def run(api: Any, params: Dict[str, Any], check_mode: bool = False, **kwargs: Any) -> Dict[str, Any]:
    """Validate, then converge; ProvisionError on any outcome the user must act on."""
    checked = validate(params)
    provisioner = Provisioner(api, checked, check_mode=check_mode, **kwargs)
    try:
        if checked.get("state", "present") == "absent":
            return provisioner.remove()
        return provisioner.ensure()
    except ProvisionError:
        raise
    except Exception as exc:  # a service answer we do not handle: say which, keep the partial result empty
        if getattr(exc, "status", None) is None:
            raise
        raise ServiceFailure("OCI answered %s" % describe(exc)) from None

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The OCI calls of the gpu_instances module on the real `oci` SDK, answering the API's camelCase JSON (the SDK's
models are skipped: `skip_deserialization`), with the SDK's own retries off (the logic retries 429 itself and must
see "Out of host capacity" at once rather than after the SDK's 5xx retries)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ._oci_auth import oci_auth

try:
    import oci

    HAS_OCI = True
except ImportError:  # the module reports it with missing_required_lib
    oci = None
    HAS_OCI = False


class OciApi:
    """One signer, one client per service, for one region."""

    def __init__(
        self,
        auth_type: str = "api_key",
        config_file: str = "~/.oci/config",
        profile: str = "DEFAULT",
        region: Optional[str] = None,
        timeout: float = 60.0,
    ):
        config, signer = oci_auth(oci, auth_type, config_file, profile, region)
        self.region = config["region"]
        kwargs = {"signer": signer, "timeout": (10.0, float(timeout)), "skip_deserialization": True}
        self.compute = oci.core.ComputeClient(config, **kwargs)
        self.network = oci.core.VirtualNetworkClient(config, **kwargs)
        self.identity = oci.identity.IdentityClient(config, **kwargs)
        self._no_sdk_retry = {"retry_strategy": oci.retry.NoneRetryStrategy()}

    def _all(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> List[Dict[str, Any]]:
        items: List[Dict[str, Any]] = []
        page = None
        while True:
            response = method(*args, page=page, limit=100, **kwargs, **self._no_sdk_retry)
            items.extend(response.data or [])
            page = response.headers.get("opc-next-page")
            if not page:
                return items

    def list_instances(self, compartment_id: str) -> List[Dict[str, Any]]:
        return self._all(self.compute.list_instances, compartment_id)

    def list_images(self, compartment_id: str, os_name: str, version: str, shape: str) -> List[Dict[str, Any]]:
        return self._all(
            self.compute.list_images,
            compartment_id,
            operating_system=os_name,
            operating_system_version=version,
            shape=shape,
            sort_by="TIMECREATED",
            sort_order="DESC",
        )

    def list_availability_domains(self, compartment_id: str) -> List[Dict[str, Any]]:
        return list(self.identity.list_availability_domains(compartment_id, **self._no_sdk_retry).data or [])

    def launch_instance(self, details: Dict[str, Any]) -> Dict[str, Any]:
        # A camelCase dict is serialized as is, the same JSON a LaunchInstanceDetails model would give.
        return dict(self.compute.launch_instance(details, **self._no_sdk_retry).data)

    def get_instance(self, instance_id: str) -> Dict[str, Any]:
        return dict(self.compute.get_instance(instance_id, **self._no_sdk_retry).data)

    def terminate_instance(self, instance_id: str, preserve_boot_volume: bool) -> None:
        self.compute.terminate_instance(instance_id, preserve_boot_volume=preserve_boot_volume, **self._no_sdk_retry)

    def list_vnic_attachments(self, compartment_id: str, instance_id: str) -> List[Dict[str, Any]]:
        return self._all(self.compute.list_vnic_attachments, compartment_id, instance_id=instance_id)

    def get_vnic(self, vnic_id: str) -> Dict[str, Any]:
        return dict(self.network.get_vnic(vnic_id, **self._no_sdk_retry).data)

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""OCI authentication, once for the collection: the inventory plugin's clients and the gpu_instances module's both
start from here (a module can import module_utils only, a plugin can import both)."""

from __future__ import annotations

from os.path import expanduser
from typing import Any, Dict, Optional, Tuple


def oci_auth(
    oci: Any, auth_type: str = "api_key", config_file: str = "~/.oci/config", profile: str = "DEFAULT",
    region: Optional[str] = None,
) -> Tuple[Dict[str, Any], Any]:  # fmt: skip
    """(client config, signer). `api_key`: the config file's profile and its key; `instance_principal`: the identity
    of the OCI instance running this. The config carries `region` (`region` wins when given) and `tenancy`."""
    if auth_type == "instance_principal":
        signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        return {"region": region or signer.region, "tenancy": signer.tenancy_id}, signer
    # The path is passed explicitly: from_file() would prefer ~/.oci/config over OCI_CONFIG_FILE otherwise.
    config = oci.config.from_file(file_location=expanduser(config_file), profile_name=profile)
    signer = oci.signer.Signer(
        tenancy=config["tenancy"],
        user=config["user"],
        fingerprint=config["fingerprint"],
        private_key_file_location=config.get("key_file"),
        pass_phrase=config.get("pass_phrase"),
        private_key_content=config.get("key_content"),
    )
    if region:
        config["region"] = region
    return config, signer

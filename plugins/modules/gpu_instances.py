#!/usr/bin/python
# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_instances
short_description: Ensure a group of OCI GPU instances exists and is RUNNING, or is terminated
version_added: "0.1.0"
description:
  - Runs on the controller (C(localhost)) over the C(oci) SDK. Ensures O(count) instances of O(shape) named
    C(<name>-1) ... C(<name>-<count>) exist in O(compartment_id) and are RUNNING. A member of the group is found by its
    display name B(and) the freeform tag C(oci_gpu_vllm_group=<name>), so a re-run with the group present changes
    nothing and launches nothing. Instances of the group with other indexes are reported (RV(not_managed)), never
    touched by O(state=present).
  - "Capacity fallback: when LaunchInstance answers C(Out of host capacity.) (HTTP 500 InternalError) the next
    availability domain is tried, in the order of O(availability_domains), else every domain of the region by name
    (OCI does not promise ListAvailabilityDomains' order). A domain found full is skipped for the rest of the run.
    Each instance reports where it landed and which domains were full."
  - Service limits and compartment quotas (HTTP 400 C(LimitExceeded), C(QuotaExceeded)) stop at once with the
    service's message and what to ask for (shape and count). HTTP 429 is retried with exponential backoff.
  - "Partial failure: instances launched before a failure (capacity, quota) are kept and reported in the failure's
    RV(instances); a re-run launches only the missing ones. A failed launch leaves nothing behind (OCI creates no
    instance)."
  - The O(shape) is checked against the collection's one shape table (C(plugins/plugin_utils/_oci_gpu_shapes.py)) by
    this module's action plugin on the controller, before any call; every other value is checked before any call that
    creates something.
  - A stopped member is not started; the module fails naming it.
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
requirements:
  - oci (the OCI Python SDK) on the controller
attributes:
  check_mode:
    support: full
    description: Lists the group and looks up the image and availability domains; reports RV(would_launch) or
      RV(terminated) without calling LaunchInstance or TerminateInstance.
  diff_mode:
    support: none
    description: No diff is produced; RV(launched), RV(would_launch) and RV(terminated) say what changes.
options:
  name:
    description: The group name; instances are named C(<name>-<index>) and tagged C(oci_gpu_vllm_group=<name>).
    type: str
    required: true
  state:
    description:
      - V(present) launches the missing members and waits until all are RUNNING.
      - V(absent) terminates every instance of the group (any index) in O(compartment_id).
    type: str
    choices: [present, absent]
    default: present
  count:
    description: How many instances, 1 or more (0 is refused; use O(state=absent) to remove the group).
    type: int
    default: 1
  shape:
    description: An OCI GPU shape of the collection's shape table, e.g. C(VM.GPU.A10.1), C(BM.GPU.H100.8).
    type: str
    default: VM.GPU.A10.1
  compartment_id:
    description: OCID of the compartment of the instances.
    type: str
    required: true
  subnet_id:
    description: OCID of the subnet of the primary VNIC; required with O(state=present).
    type: str
  assign_public_ip:
    description: Give the primary VNIC a public IP (the subnet must allow it).
    type: bool
    default: true
  availability_domains:
    description:
      - Availability domain names to try, in this order, when one is out of host capacity.
      - Empty means every domain of the region, sorted by name (C(...-AD-1), C(...-AD-2), ...).
    type: list
    elements: str
    default: []
  image_id:
    description: OCID of the image; when empty the newest AVAILABLE platform image of O(image_os) O(image_os_version)
      that supports O(shape) (ListImages, newest by time created).
    type: str
  image_os:
    description: Operating system of the looked-up image.
    type: str
    default: Canonical Ubuntu
  image_os_version:
    description: Operating system version of the looked-up image (C(22.04), C(24.04)).
    type: str
    default: "22.04"
  boot_volume_size_gb:
    description:
      - Boot volume size in GB, 50 (OCI's floor) to 32768. The seed uses 200; the NVIDIA driver, Docker, the vLLM
        image (about 20 GB unpacked) and the model weights (Mixtral 8x7B about 90 GB) live there.
      - C(oci-vllm provision --model) sizes it from the sizing planner, with 200 as the floor.
    type: int
    default: 200
  ssh_public_key:
    description: OpenSSH public key line(s) for the C(ubuntu) user (instance metadata C(ssh_authorized_keys)).
    type: str
  user_data:
    description:
      - cloud-init user data (plain text; sent base64-encoded in the instance metadata C(user_data)).
      - When omitted the action plugin sends the collection's C(playbooks/files/gpu-host-cloud-init.yml), which holds
        apt's periodic jobs back on first boot so they do not race site.yml (docs/provision.md).
    type: str
  freeform_tags:
    description: Freeform tags of new instances; the module adds C(oci_gpu_vllm_group=<name>). The default is what
      C(inventory/oci/tenancy.oci_gpu.yml) selects.
    type: dict
    default: {vllm: "true"}
  preserve_boot_volume:
    description: With O(state=absent), keep the boot volumes (they keep costing); by default they are deleted with the
      instances.
    type: bool
    default: false
  wait:
    description: Wait until every member is RUNNING (or TERMINATED with O(state=absent)).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for O(wait).
    type: int
    default: 1200
  auth_type:
    description: C(api_key) signs with the key of an OCI config file profile; C(instance_principal) uses the identity of
      the OCI instance running Ansible. Default from E(OCI_AUTH_TYPE), else C(api_key).
    type: str
    choices: [api_key, instance_principal]
  config_file:
    description: OCI config file for O(auth_type=api_key); default from E(OCI_CONFIG_FILE), else C(~/.oci/config).
    type: path
  config_profile:
    description: Profile of the config file; default from E(OCI_CONFIG_PROFILE), else C(DEFAULT).
    type: str
  region:
    description: Region; default from E(OCI_REGION), else the profile's (or the instance principal's) region.
    type: str
notes:
  - The inventory plugin (C(oci_gpu.vllm.oci_gpu)) finds the new hosts after C(ansible.builtin.meta)
    C(refresh_inventory) even with its cache on (a refresh parses without the cache and rewrites it);
    C(playbooks/provision.yml) does that.
  - The provisioning guide is C(docs/provision.md) in this collection.
"""

EXAMPLES = r"""
- name: Two A10 hosts for vLLM
  oci_gpu.vllm.gpu_instances:
    name: vllm-a10
    count: 2
    shape: VM.GPU.A10.1
    compartment_id: ocid1.compartment.oc1..aaaaexample
    subnet_id: ocid1.subnet.oc1.eu-frankfurt-1.aaaaexample
    ssh_public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/oci_gpu.pub') }}"
    availability_domains: [Uocm:EU-FRANKFURT-1-AD-2, Uocm:EU-FRANKFURT-1-AD-1]
  register: provisioned

- name: Remove them, boot volumes included
  oci_gpu.vllm.gpu_instances:
    name: vllm-a10
    state: absent
    compartment_id: ocid1.compartment.oc1..aaaaexample
"""

RETURN = r"""
instances:
  description: The members C(<name>-1..count) that exist, in index order (also on failure, for those launched).
  returned: state=present
  type: list
  elements: dict
  contains:
    name: {description: Display name., type: str}
    id: {description: Instance OCID., type: str}
    shape: {description: Its shape., type: str}
    availability_domain: {description: Where it runs., type: str}
    fault_domain: {description: Its fault domain., type: str}
    lifecycle_state: {description: Lifecycle state at the end of the run., type: str}
    launched: {description: Launched by this run., type: bool}
    availability_domains_full: {description: Domains that were out of host capacity before it landed., type: list}
    public_ip: {description: Public IP of the primary VNIC (RUNNING instances)., type: str}
    private_ip: {description: Private IP of the primary VNIC (RUNNING instances)., type: str}
launched:
  description: Names launched by this run.
  returned: state=present
  type: list
  elements: str
would_launch:
  description: In check mode, the names that would be launched.
  returned: check mode, state=present
  type: list
  elements: str
availability_domains_full:
  description: Availability domains that answered "Out of host capacity." during this run.
  returned: state=present
  type: list
  elements: str
availability_domain_order:
  description: The order tried (empty when nothing had to be launched).
  returned: state=present
  type: list
  elements: str
image_id:
  description: The image used (or that would be) for new instances; null when nothing had to be launched.
  returned: state=present
  type: str
not_managed:
  description: Instances of the group outside C(<name>-1..count), left alone.
  returned: state=present
  type: list
  elements: str
terminated:
  description: The instances terminated (or that would be, in check mode).
  returned: state=absent
  type: list
  elements: dict
kind:
  description: On failure, what failed; V(bad_input), V(capacity), V(quota), V(timeout), V(service), V(error).
  returned: failure
  type: str
retries:
  description: HTTP 429 answers waited out.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision import (
    DEFAULT_BOOT_VOLUME_GB,
    DEFAULT_FREEFORM_TAGS,
    DEFAULT_OS,
    DEFAULT_OS_VERSION,
    DEFAULT_SHAPE,
    ProvisionError,
    run,
    validate,
)
from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision_sdk import HAS_OCI, OciApi


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            count=dict(type="int", default=1),
            shape=dict(type="str", default=DEFAULT_SHAPE),
            compartment_id=dict(type="str", required=True),
            subnet_id=dict(type="str"),
            assign_public_ip=dict(type="bool", default=True),
            availability_domains=dict(type="list", elements="str", default=[]),
            image_id=dict(type="str"),
            image_os=dict(type="str", default=DEFAULT_OS),
            image_os_version=dict(type="str", default=DEFAULT_OS_VERSION),
            boot_volume_size_gb=dict(type="int", default=DEFAULT_BOOT_VOLUME_GB),
            ssh_public_key=dict(type="str", no_log=False),
            user_data=dict(type="str", no_log=True),
            freeform_tags=dict(type="dict", default=dict(DEFAULT_FREEFORM_TAGS)),
            preserve_boot_volume=dict(type="bool", default=False),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=1200),
            auth_type=dict(type="str", choices=["api_key", "instance_principal"]),
            config_file=dict(type="path"),
            config_profile=dict(type="str"),
            region=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if not HAS_OCI:
        module.fail_json(msg=missing_required_lib("oci"), kind="error")
    params = module.params
    env = os.environ
    try:
        validate(params)  # bad input is refused before credentials are read or any call is made
    except ProvisionError as exc:
        module.fail_json(msg=exc.msg, kind=exc.kind)
    try:
        api = OciApi(
            auth_type=params["auth_type"] or env.get("OCI_AUTH_TYPE") or "api_key",
            config_file=params["config_file"] or env.get("OCI_CONFIG_FILE") or "~/.oci/config",
            profile=params["config_profile"] or env.get("OCI_CONFIG_PROFILE") or "DEFAULT",
            region=params["region"] or env.get("OCI_REGION"),
        )
    except Exception as exc:  # config file, key or instance principal: say which and stop
        module.fail_json(msg="cannot set up OCI credentials: %s: %s" % (type(exc).__name__, exc), kind="bad_input")
    try:
        result = run(api, params, check_mode=module.check_mode)
    except ProvisionError as exc:
        module.fail_json(msg=exc.msg, kind=exc.kind, changed=bool(exc.result.get("launched")), **exc.result)
    except Exception as exc:  # no answer from OCI (connection, timeout): a message, not a module traceback
        module.fail_json(msg="OCI call failed: %s: %s" % (type(exc).__name__, exc), kind="error")
    module.exit_json(**result)


if __name__ == "__main__":
    main()

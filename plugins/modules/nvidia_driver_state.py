#!/usr/bin/python
# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_driver_state
short_description: Read which NVIDIA driver a host really runs and decide what the nvidia_driver role does
version_added: "0.1.0"
description:
  - Reads the loaded kernel module's version (C(/sys/module/nvidia/version), C(/proc/driver/nvidia/version)), asks
    C(nvidia-smi) for the GPUs and the driver version it talks to, and lists the installed driver packages.
  - Decides from all three. A working driver of the wanted branch is C(ok) (from packages) or C(adopt) (installed some
    other way, e.g. OCI GPU images); another branch is replaced, kept or refused (O(other_branch)); no loaded driver
    means C(install); installed packages that differ from the loaded module mean C(reboot).
  - Read-only; runs the same in check mode.
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
options:
  branch:
    description: Wanted driver branch, e.g. C(580).
    type: str
    required: true
  adopt_working:
    description: Leave a working driver of the wanted branch alone when it did not come from packages.
    type: bool
    default: true
  other_branch:
    description:
      - What to do when another branch is loaded and working. C(replace) installs the wanted branch (reboot),
        C(keep) leaves the working driver, C(fail) stops with both versions named.
      - C(auto) is C(replace) when the working driver came from packages (they can be purged cleanly) and C(fail)
        otherwise.
    type: str
    choices: [auto, replace, keep, fail]
    default: auto
  expected_gpus:
    description: Minimum GPU count nvidia-smi must list for RV(problems) to be empty.
    type: int
    default: 0
  loaded_version_files:
    description: Files holding the loaded kernel module's version, read in this order.
    type: list
    elements: path
    default: [/sys/module/nvidia/version, /proc/driver/nvidia/version]
  nvidia_smi:
    description: nvidia-smi's name or path; looked up in PATH and C(/usr/local/nvidia/bin).
    type: str
    default: nvidia-smi
  reboot_required_file:
    description: The system's own reboot request file (reported, never acted on here).
    type: path
    default: /var/run/reboot-required
"""

EXAMPLES = r"""
- name: Read the driver state
  oci_gpu.vllm.nvidia_driver_state:
    branch: "580"
    expected_gpus: 8
  register: driver
"""

RETURN = r"""
state:
  description: What the host runs.
  returned: always
  type: dict
  sample:
    loaded: {version: 580.159.04, flavour: open, source: /proc/driver/nvidia/version}
    smi: {ok: true, rc: 0, driver_version: 580.159.04, gpus: [{index: 0, name: NVIDIA H200, memory_total_mib: 143771}]}
    packages: {nvidia-utils-580-server: {version: 580.159.03-0ubuntu0.24.04.1, hold: true}}
    package_branches: ["580"]
    system_reboot_requested: false
decision:
  description:
    - C(action) (ok, adopt, keep, install, replace, reboot) and C(reason), naming the versions.
    - C(manage_packages), C(reboot_required), C(verify_version), C(installed_version), C(installed_from),
      C(loaded_version) and C(loaded_flavour).
  returned: success
  type: dict
problems:
  description: Why verification fails (nvidia-smi silent, wrong version, too few GPUs); empty when verified.
  returned: success
  type: list
  elements: str
python_apt:
  description: Whether python3-apt is importable (the apt module needs it in check mode).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_state import (
    OTHER_BRANCH_POLICIES,
    DriverStateError,
    decide,
    probe,
    verify,
)


def _read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _python_apt():
    try:
        import apt  # noqa: F401  # pylint: disable=unused-import
    except ImportError:
        return False
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            branch=dict(type="str", required=True),
            adopt_working=dict(type="bool", default=True),
            other_branch=dict(type="str", choices=list(OTHER_BRANCH_POLICIES), default="auto"),
            expected_gpus=dict(type="int", default=0),
            loaded_version_files=dict(
                type="list", elements="path", default=["/sys/module/nvidia/version", "/proc/driver/nvidia/version"]
            ),
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            reboot_required_file=dict(type="path", default="/var/run/reboot-required"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    smi = module.get_bin_path(params["nvidia_smi"], opt_dirs=["/usr/local/nvidia/bin"])

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    state = probe(run, _read_file, params["loaded_version_files"], smi, params["reboot_required_file"])
    python_apt = _python_apt()
    try:
        decision = decide(state, params["branch"], params["adopt_working"], params["other_branch"])
    except DriverStateError as exc:
        module.fail_json(msg=exc.msg, state=state, python_apt=python_apt)
    problems = verify(state, decision, params["expected_gpus"])
    module.exit_json(changed=False, state=state, decision=decision, problems=problems, python_apt=python_apt)


if __name__ == "__main__":
    main()

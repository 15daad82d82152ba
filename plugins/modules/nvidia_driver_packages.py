#!/usr/bin/python
# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_driver_packages
short_description: Resolve the NVIDIA driver packages of a source and branch to exact versions, before any change
version_added: "0.2.0"
description:
  - Resolves every package the nvidia_driver role installs to an exact C(name=version) from apt's own answers
    (C(apt-cache policy), C(apt-cache show)); fails naming each package without an install candidate, so a branch
    change stops before anything is purged.
  - For the C(ubuntu) source the driver version is the one the precompiled kernel module packages of the kernels
    that run and boot next are built for (as C(ubuntu-drivers) chooses); DKMS where no precompiled module exists.
  - Classifies the installed driver packages into RV(own) (this source, branch and module flavour) and RV(purge).
  - Read-only; runs the same in check mode.
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
options:
  source:
    description: C(ubuntu) (Canonical's builds in the Ubuntu archive) or C(cuda) (NVIDIA's CUDA repository).
    type: str
    choices: [ubuntu, cuda]
    required: true
  branch:
    description: Driver branch, e.g. C(580).
    type: str
    required: true
  open_kernel_modules:
    description: NVIDIA's open kernel modules (true) or the proprietary ones.
    type: bool
    default: true
  fabricmanager:
    description: Also Fabric Manager and NSCQ (NVSwitch shapes), at the driver's version.
    type: bool
    default: false
  cuda_toolkit:
    description: CUDA toolkit as C(MAJOR-MINOR) (C(cuda) source only); empty for none.
    type: str
    default: ""
  kernel_modules:
    description: C(auto) (precompiled where packaged, else DKMS), C(precompiled) or C(dkms); C(ubuntu) source only.
    type: str
    choices: [auto, precompiled, dkms]
    default: auto
  wanted_version:
    description: An exact driver version of the branch (e.g. C(580.95.05)); empty for the newest that fits.
    type: str
    default: ""
  kernel_headers:
    description: C(cuda) source only; also the headers of the kernels that run and boot next (NVIDIA's DKMS builds).
    type: bool
    default: false
  resolve:
    description: false only classifies the installed packages (e.g. to hold them after installing).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Resolve branch 580 from the Ubuntu archive
  oci_gpu.vllm.nvidia_driver_packages:
    source: ubuntu
    branch: "580"
    fabricmanager: true
  register: packages
"""

RETURN = r"""
install:
  description: Exact C(name=version) specs to install.
  returned: when resolve is true
  type: list
  elements: str
  sample: [nvidia-headless-no-dkms-580-server-open=580.196.07-0ubuntu0.24.04.1]
driver_version:
  description: The driver version those packages install.
  returned: when resolve is true
  type: str
kernel_modules:
  description: C(precompiled) or C(dkms), as resolved.
  returned: when resolve is true
  type: str
kernels:
  description: Kernel releases the modules are for (the packaged running kernel and the newest installed one).
  returned: always
  type: list
  elements: str
fabricmanager_version:
  description: Fabric Manager's version (empty without it).
  returned: when resolve is true
  type: str
notes:
  description: Choices worth reporting (e.g. DKMS because no precompiled module exists).
  returned: when resolve is true
  type: list
  elements: str
to_install:
  description:
    - Those of RV(install) that are not installed at exactly that version (empty on a converged host).
  returned: when resolve is true
  type: list
  elements: str
own:
  description: Installed driver packages of this source, branch and flavour.
  returned: always
  type: list
  elements: str
to_hold:
  description: Those of RV(own) not held yet.
  returned: always
  type: list
  elements: str
held:
  description: Installed driver packages (own or to purge) that are held.
  returned: always
  type: list
  elements: str
purge:
  description: Installed driver packages of other branches, sources or flavours, and NVIDIA's unversioned metas.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_packages import (
    KERNEL_MODULES,
    SOURCES,
    PackagesError,
    classify,
    pending,
    resolve,
    target_kernels,
)
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_state import (
    DPKG_FORMAT,
    DPKG_PATTERNS,
    parse_dpkg,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str", choices=list(SOURCES), required=True),
            branch=dict(type="str", required=True),
            open_kernel_modules=dict(type="bool", default=True),
            fabricmanager=dict(type="bool", default=False),
            cuda_toolkit=dict(type="str", default=""),
            kernel_modules=dict(type="str", choices=list(KERNEL_MODULES), default="auto"),
            wanted_version=dict(type="str", default=""),
            kernel_headers=dict(type="bool", default=False),
            resolve=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    _rc, out, _err = run(["dpkg-query", "-W", "-f=" + DPKG_FORMAT, "linux-image-*", *DPKG_PATTERNS])
    installed = parse_dpkg(out)
    kernels = target_kernels(installed, os.uname()[2])
    result = dict(changed=False, kernels=kernels)
    mode = params["kernel_modules"]
    if params["resolve"]:
        try:
            resolved = resolve(
                run,
                params["source"],
                params["branch"],
                params["open_kernel_modules"],
                params["fabricmanager"],
                params["cuda_toolkit"],
                mode,
                kernels,
                params["wanted_version"],
                params["kernel_headers"],
            )
        except PackagesError as exc:
            module.fail_json(msg=exc.msg, **result)
        result.update(resolved, to_install=pending(run, resolved["install"]))
        mode = resolved["kernel_modules"]
    classes = classify(installed, params["source"], params["branch"], params["open_kernel_modules"], mode)
    held = sorted(n for n in classes["own"] + classes["purge"] if installed[n]["hold"])
    result.update(classes, held=held, to_hold=[n for n in classes["own"] if not installed[n]["hold"]])
    module.exit_json(**result)


if __name__ == "__main__":
    main()

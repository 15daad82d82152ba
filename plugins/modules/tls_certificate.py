#!/usr/bin/python
# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_certificate
short_description: Keep a small private CA on the control node and issue per-host TLS server certificates
version_added: "0.1.0"
description:
  - "Meant to run on the control node (C(delegate_to: localhost), C(become: false)); the CA key never leaves it."
  - Creates, once, a private CA in O(ca_dir) (C(ca.key), C(ca.crt); ECDSA P-256, CA:true, pathlen 0). Its common
    name is O(ca_common_name) plus a short random suffix, so the CAs of two control nodes can be told apart.
  - Never replaces an existing CA, because clients trust it. When C(ca.key) and C(ca.crt) do not belong together,
    one of them is missing, C(ca.crt) is not a CA or has expired, the module fails naming the files.
  - With O(name), keeps the host key C(hosts/<name>.key) (ECDSA P-256, created when absent) and (re)issues
    C(hosts/<name>.crt) (serverAuth, the wanted O(subject_alt_names)) when it is missing, not signed by this CA, has
    other subject alternative names or another key, or expires within O(renew_before_days).
  - Keys are created mode 0600 and directories 0700; every file is written to a temporary file in the same
    directory and renamed into place. Key material is never returned.
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
requirements:
  - cryptography (a dependency of ansible-core, so present on the control node)
options:
  ca_dir:
    description:
      - Directory of the CA (C(ca.key), C(ca.crt)) and of the host files (C(hosts/<name>.key), C(hosts/<name>.crt)).
      - Created mode 0700 when absent.
    type: path
    required: true
  name:
    description:
      - File stem of the host's key and certificate, for example the inventory hostname.
      - 1 to 128 letters, digits, C(.), C(_) or C(-), starting with a letter or digit.
      - When omitted, only the CA is ensured.
    type: str
  subject_alt_names:
    description:
      - IP addresses (IPv4 or IPv6) and DNS names (optionally C(*.) wildcards) the certificate is valid for.
      - The first entry also becomes the certificate's common name. Order does not matter for renewal.
      - Required, and not empty, when O(name) is given.
    type: list
    elements: str
  valid_days:
    description:
      - Lifetime of a newly issued host certificate in days (capped at the CA's end of validity).
    type: int
    default: 397
  renew_before_days:
    description:
      - Reissue the host certificate when it expires within this many days. Must be smaller than O(valid_days).
    type: int
    default: 30
  ca_valid_days:
    description:
      - Lifetime of the CA certificate in days, used only when the CA is created.
    type: int
    default: 3650
  ca_common_name:
    description:
      - Common name of a new CA; a space and 8 random hex digits are appended. Used only when the CA is created.
    type: str
    default: oci_gpu.vllm control-node CA
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Computes what would be created or issued and writes nothing. When the CA does not exist yet,
        RV(ca_fingerprint) is null, since the fingerprint of a CA that is not made yet is unknown.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Distribute RV(ca_file) to the clients that must trust the servers, and the host files to each server.
  - To start a new CA, remove C(ca.key) and C(ca.crt) (every host certificate is then reissued on the next run).
"""

EXAMPLES = r"""
- name: Ensure the control-node CA and this host's server certificate
  oci_gpu.vllm.tls_certificate:
    ca_dir: "{{ playbook_dir }}/.tls-ca"
    name: "{{ inventory_hostname }}"
    subject_alt_names:
      - "{{ ansible_host }}"
      - "{{ inventory_hostname }}"
  delegate_to: localhost
  become: false
  register: vllm_tls

- name: Install the certificate and key for the nginx front
  ansible.builtin.copy:
    src: "{{ item.src }}"
    dest: "/etc/nginx/tls/{{ item.dest }}"
    mode: "{{ item.mode }}"
  loop:
    - {src: "{{ vllm_tls.cert_file }}", dest: server.crt, mode: "0644"}
    - {src: "{{ vllm_tls.key_file }}", dest: server.key, mode: "0600"}
"""

RETURN = r"""
ca_file:
  description: Absolute path of the CA certificate C(ca.crt).
  returned: always
  type: str
  sample: /home/ops/.tls-ca/ca.crt
ca_fingerprint:
  description: SHA-256 of the CA certificate's DER encoding, lower-case hex; null in check mode before the CA exists.
  returned: always
  type: str
  sample: 3b1f0c5e9a7d4c2b8e6f1a0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b
cert_file:
  description: Absolute path of the host certificate C(hosts/<name>.crt).
  returned: when O(name) is given
  type: str
  sample: /home/ops/.tls-ca/hosts/gpu-a10-1.crt
key_file:
  description: Absolute path of the host key C(hosts/<name>.key) (mode 0600); the key itself is never returned.
  returned: when O(name) is given
  type: str
  sample: /home/ops/.tls-ca/hosts/gpu-a10-1.key
issued:
  description: Whether a new host certificate was issued (or, in check mode, would be).
  returned: always
  type: bool
  sample: true
reason:
  description: Why the host certificate was issued, or C(valid) when the existing one was kept.
  returned: when O(name) is given
  type: str
  sample: "subject alternative names differ: has [10.0.0.5], wants [10.0.0.5, gpu-a10-1.example.com]"
not_after:
  description: End of validity of the host certificate (ISO 8601, UTC).
  returned: when O(name) is given
  type: str
  sample: "2026-01-04T12:00:00Z"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.oci_gpu.vllm.plugins.module_utils._tls_ca import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    DEFAULT_CA_COMMON_NAME,
    HAS_CRYPTOGRAPHY,
    TlsCaError,
    ensure_tls_certificate,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ca_dir=dict(type="path", required=True),
            name=dict(type="str"),
            subject_alt_names=dict(type="list", elements="str"),
            valid_days=dict(type="int", default=397),
            renew_before_days=dict(type="int", default=30),
            ca_valid_days=dict(type="int", default=3650),
            ca_common_name=dict(type="str", default=DEFAULT_CA_COMMON_NAME),
        ),
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)
    params = module.params
    try:
        result = ensure_tls_certificate(
            ca_dir=params["ca_dir"],
            name=params["name"],
            subject_alt_names=params["subject_alt_names"],
            valid_days=params["valid_days"],
            renew_before_days=params["renew_before_days"],
            ca_valid_days=params["ca_valid_days"],
            ca_common_name=params["ca_common_name"],
            check_mode=module.check_mode,
        )
    except TlsCaError as exc:
        module.fail_json(msg=exc.msg, changed=False)
    except OSError as exc:
        module.fail_json(msg="cannot read or write the CA directory %s: %s" % (params["ca_dir"], exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

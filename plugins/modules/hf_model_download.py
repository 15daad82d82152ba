#!/usr/bin/python
# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hf_model_download
short_description: Download a model from a Hugging Face hub endpoint into the host's huggingface_hub cache
version_added: "0.1.0"
description:
  - Asks the endpoint for the repository's files at O(revision) (commit, names, sizes, hashes), keeps those matching
    O(allow_patterns), and downloads the missing ones into the cache layout huggingface_hub itself writes under
    C(<hf_home>/hub/models--<org>--<name>/) (C(blobs/), C(snapshots/<commit>/) as relative symlinks,
    C(refs/<revision>)), so a vLLM container given O(hf_home) as C(HF_HOME) starts offline.
  - Checks access before anything changes, with messages that say what to do. A 401 means no token where one is
    needed or an invalid token, a 403 a valid token not granted access to a gated repository (request access on the
    model's page), a 404 no such repository or revision.
  - Checks free disk first, with the bytes still missing plus O(reserve_bytes) against the free space of
    O(hf_home)'s filesystem.
  - Resumes partial files (C(.incomplete)) with HTTP ranges, retries connection errors and 429/5xx answers with
    back-off, verifies each file's size and hash (sha256 for LFS files, git blob id for the others).
  - Holds an exclusive lock per repository for the whole download, so a second run waits for the first and then finds
    the files in place, or resumes the partial files of a run that died.
  - Uses only the Python standard library on the target.
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
options:
  repo_id:
    description:
      - Repository id on the hub, C(ORG/NAME), for example C(mistralai/Mistral-7B-Instruct-v0.2).
    type: str
    required: true
  revision:
    description:
      - Branch, tag or commit sha to download.
    type: str
    default: main
  endpoint:
    description:
      - Base URL of the hub (what huggingface_hub calls C(HF_ENDPOINT)).
    type: str
    default: https://huggingface.co
  hf_home:
    description:
      - Absolute path of the host's Hugging Face home; files go under its C(hub/) folder. Mount it into the vLLM
        container and set C(HF_HOME) to the mount point.
    type: path
    required: true
  token:
    description:
      - A Hugging Face read token given directly (for example a new one, checked before it is stored); wins over
        O(token_file). Never logged, never in results or messages.
      - With a token (either way), a plain C(http://) O(endpoint) is refused unless it is on the loopback, since the
        token would cross the network in clear.
    type: str
  token_file:
    description:
      - Path on the target of a file holding a Hugging Face read token, needed for gated or private repositories.
      - The token is sent only to O(endpoint)'s own origin and never appears in the results or messages.
    type: path
  allow_patterns:
    description:
      - Shell-style patterns of the files to download (C(*) also matches C(/)).
      - Default is what vLLM loads, C(*.safetensors), C(*.safetensors.index.json), C(*.bin), C(*.pt), C(*.pth),
        C(config.json), C(generation_config.json), C(params.json), tokenizer files (C(tokenizer.json),
        C(tokenizer_config.json), C(special_tokens_map.json), C(added_tokens.json), C(vocab.json), C(merges.txt),
        C(tekken.json), C(*.model)) and C(chat_template*).
      - Whatever the patterns, pickled weights (C(*.bin), C(*.pt), C(*.pth)) are left out when the selection has
        safetensors, as vLLM loads only the first weight format a repository has.
    type: list
    elements: str
  ca_file:
    description:
      - PEM file (on the target) of the CA that verifies O(endpoint)'s certificate, instead of the system's trust store.
    type: path
  ca_data:
    description:
      - PEM text of such a CA (e.g. read from a file on the control node), instead of the system's trust store.
    type: str
  reserve_bytes:
    description:
      - Bytes that must stay free on O(hf_home)'s filesystem on top of the files still to download (the container
        image, logs).
    type: int
    default: 0
  timeout:
    description:
      - Seconds one HTTP connection may wait for the endpoint (connect, or between two reads).
    type: float
    default: 30
  retries:
    description:
      - Retries of a request after a connection error, a timeout or a 429/5xx answer, with back-off.
    type: int
    default: 5
  lock_timeout:
    description:
      - Seconds to wait for another download of the same repository to finish. Default is to wait as long as it
        runs (a download that dies releases the lock at once).
    type: float
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Plans, checks access and free disk, and reports C(changed) and RV(bytes_missing) without downloading.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - A complete cache costs one metadata request and no file body; the task then reports C(changed=false).
seealso:
  - name: huggingface_hub cache layout
    description: How the cache this module fills is organised.
    link: https://huggingface.co/docs/huggingface_hub/guides/manage-cache
"""

EXAMPLES = r"""
- name: Download Mistral 7B Instruct into the host's cache before vLLM starts
  oci_gpu.vllm.hf_model_download:
    repo_id: mistralai/Mistral-7B-Instruct-v0.2
    hf_home: /var/lib/vllm/hf
    token_file: /etc/vllm/hf_token
    reserve_bytes: "{{ 12 * 1024 ** 3 }}"
  register: model

- name: Show where the snapshot is
  ansible.builtin.debug:
    msg: "{{ model.snapshot_path }} ({{ model.bytes_downloaded }} of {{ model.bytes_total }} bytes fetched)"
"""

RETURN = r"""
commit:
  description: Commit sha the revision resolved to.
  returned: success
  type: str
  sample: 41b61a33a2483885c981aa79e0df6b32407ed873
snapshot_path:
  description: Folder of the snapshot, C(<hf_home>/hub/models--<org>--<name>/snapshots/<commit>).
  returned: success
  type: str
  sample: /var/lib/vllm/hf/hub/models--mistralai--Mistral-7B-Instruct-v0.2/snapshots/41b61a33a248
files:
  description: Files of the snapshot, with their sizes in bytes.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "config.json", "size": 596}, {"name": "model-00001-of-00003.safetensors", "size": 4943162336}]
bytes_total:
  description: Sum of the sizes of RV(files).
  returned: success
  type: int
  sample: 14483498017
bytes_downloaded:
  description: File body bytes received by this run (0 in check mode).
  returned: success
  type: int
  sample: 14483498017
bytes_missing:
  description: Bytes still to download after this run (in check mode, what a real run would download).
  returned: success
  type: int
  sample: 0
offline:
  description:
    - Set when the endpoint could not be reached (connection error, 5xx, 429 after the retries) but this module had
      completed the revision before and every file is still in the snapshot at its size; says why (also a warning).
  returned: when the kept copy was used
  type: str
bytes_free:
  description: Free bytes found on the cache's filesystem.
  returned: when the disk check fails
  type: int
  sample: 5368709120
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.oci_gpu.vllm.plugins.module_utils._hf_download import (
    DEFAULT_ENDPOINT,
    DEFAULT_RETRIES,
    DEFAULT_REVISION,
    DEFAULT_TIMEOUT,
    HfDownloadError,
    download_model,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo_id=dict(type="str", required=True),
            revision=dict(type="str", default=DEFAULT_REVISION),
            endpoint=dict(type="str", default=DEFAULT_ENDPOINT),
            hf_home=dict(type="path", required=True),
            token=dict(type="str", no_log=True),
            token_file=dict(type="path"),
            allow_patterns=dict(type="list", elements="str"),
            ca_file=dict(type="path"),
            ca_data=dict(type="str"),
            reserve_bytes=dict(type="int", default=0),
            timeout=dict(type="float", default=DEFAULT_TIMEOUT),
            retries=dict(type="int", default=DEFAULT_RETRIES),
            lock_timeout=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = download_model(
            repo_id=params["repo_id"],
            hf_home=params["hf_home"],
            revision=params["revision"],
            endpoint=params["endpoint"],
            token_file=params["token_file"],
            token=params["token"],
            allow_patterns=params["allow_patterns"],
            ca_file=params["ca_file"],
            ca_data=params["ca_data"],
            reserve_bytes=params["reserve_bytes"],
            timeout=params["timeout"],
            retries=params["retries"],
            lock_timeout=params["lock_timeout"],
            check_mode=module.check_mode,
        )
    except HfDownloadError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.result)
    if result.get("offline"):
        module.warn(result["offline"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()

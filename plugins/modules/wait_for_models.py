#!/usr/bin/python
# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wait_for_models
short_description: Wait until an OpenAI-compatible server (vLLM) serves a model
version_added: "0.1.0"
description:
  - "Polls C(<url>/v1/models) with C(Authorization: Bearer <api_key>) until the expected model id is listed."
  - Fails at once on 401/403 (a wrong or missing key cannot fix itself by waiting).
  - Keeps waiting on connection refused, timeouts and 5xx answers; on timeout the message says what the last attempt
    saw (status and body).
  - Polls every O(refused_interval) while the connection is refused (nothing listens yet, as with vLLM while its
    engine loads; the kernel answers and the server does no work), so readiness is seen within a fraction of a second of
    the server starting to answer. Once the server answers without serving the model yet (a front's 502, 503, an
    empty model list, timeouts), polls every O(interval), so a loading server gets at most one poll per O(interval).
  - Fails at once when the server answers with a non-empty model list that lacks the expected id (vLLM answers only
    once its engine is up, with the fixed list of names it serves), naming the ids that are served instead.
  - When O(container) is set, inspects that Docker container before the first poll and then once per O(interval)
    through the Docker engine's unix socket, and fails within about one O(interval) when it exits, restarts, is
    replaced or disappears, returning its last log lines. The socket is spoken to directly (Python standard
    library), so neither the docker SDK nor the docker CLI is needed on the target; the user needs read access to
    the socket (usually root or group docker).
  - With O(deep_check), after the model is listed, sends one completion with C(max_tokens=1), because a server can
    list its model while its engine is dead.
  - Never changes anything on the target or the server.
author:
  - oci_gpu.vllm maintainers (!UNKNOWN)
options:
  url:
    description:
      - Base URL of the server, without C(/v1), for example C(http://127.0.0.1:8000).
    type: str
    required: true
  model:
    description:
      - Model id that must appear in C(/v1/models), i.e. vLLM's C(--served-model-name) (or C(--model)).
    type: str
    required: true
  api_key:
    description:
      - Bearer key of the server (vLLM C(--api-key)). Omit for a server without a key.
      - Never returned nor shown in messages; container log lines containing it are redacted.
    type: str
  timeout:
    description:
      - Seconds to wait in total for the model to be served.
    type: float
    default: 600
  interval:
    description:
      - Seconds between two polls once the server answers (with an error, or a list that lacks the model yet) or
        does not answer in time, and between two container inspections.
    type: float
    default: 0.5
  refused_interval:
    description:
      - Seconds between two polls while the connection is refused (nothing listens on the port yet). Such a poll
        costs the server nothing. Capped at O(interval).
    type: float
    default: 0.2
  request_timeout:
    description:
      - Seconds one HTTP request may take (poll, version and deep check).
    type: float
    default: 10
  container:
    description:
      - Name or id of a Docker container running the server, to watch for exit or restart while waiting.
    type: str
  docker_socket:
    description:
      - Path of the Docker engine's unix socket, used only with O(container).
    type: path
    default: /var/run/docker.sock
  log_lines:
    description:
      - How many of the container's last log lines to return in RV(log_tail).
    type: int
    default: 40
  deep_check:
    description:
      - After the model is listed, POST one C(/v1/completions) request with C(max_tokens=1) and fail, naming the
        answer, if it does not succeed.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https) URLs.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that verifies the server's certificate (for example the one vllm_server's front uses),
        instead of the system's trust store.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The module only reads (HTTP GETs, one side-effect-free completion with O(deep_check), Docker inspect and
        logs), so check mode polls exactly like a normal run and reports the real state. A play run in check mode
        that would only create the server container should skip this task.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Always returns C(changed=false).
seealso:
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Wait for vLLM to serve Mistral, failing fast if the container dies
  oci_gpu.vllm.wait_for_models:
    url: http://127.0.0.1:8000
    model: mistralai/Mistral-7B-Instruct-v0.2
    api_key: "{{ vllm_server_api_key }}"
    container: vllm
    timeout: 900
    deep_check: true
  register: vllm_ready

- name: Show what is served
  ansible.builtin.debug:
    msg: "{{ vllm_ready.models }} (vLLM {{ vllm_ready.server_version }}) after {{ vllm_ready.elapsed }} s"
"""

RETURN = r"""
models:
  description: Model ids listed by C(/v1/models) at the last successful poll.
  returned: always
  type: list
  elements: str
  sample: ["mistralai/Mistral-7B-Instruct-v0.2"]
elapsed:
  description: Seconds from the first poll until the module returned.
  returned: always
  type: float
  sample: 23.412
attempts:
  description: Number of polls of C(/v1/models).
  returned: always
  type: int
  sample: 12
server_version:
  description: Version from the server's open C(/version) endpoint, or null if it has none.
  returned: success
  type: str
  sample: "0.11.0"
url:
  description: Normalised base URL that was polled.
  returned: always
  type: str
  sample: http://127.0.0.1:8000
deep_check:
  description: Outcome of the deep check.
  returned: success and O(deep_check=true)
  type: dict
  contains:
    completion:
      description: Text of the one-token completion.
      type: str
      sample: " the"
log_tail:
  description: Last log lines of the watched container (API key redacted).
  returned: failure, when O(container) is set
  type: list
  elements: str
  sample: ["ValueError: head_dim 16 is not supported"]
container_state:
  description: State of the watched container when it was found exited or restarted.
  returned: failure, when the watched container exited or restarted
  type: dict
  sample: {"status": "exited", "exit_code": 1, "restart_count": 0, "oom_killed": false}
last_status:
  description: HTTP status of the last poll the server answered, or null if it never answered.
  returned: on timeout
  type: int
  sample: 503
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.oci_gpu.vllm.plugins.module_utils._wait_for_models import (
    DEFAULT_DOCKER_SOCKET,
    DEFAULT_INTERVAL,
    DEFAULT_REFUSED_INTERVAL,
    WaitForModelsError,
    wait_for_models,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            model=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=DEFAULT_INTERVAL),
            refused_interval=dict(type="float", default=DEFAULT_REFUSED_INTERVAL),
            request_timeout=dict(type="float", default=10),
            container=dict(type="str"),
            docker_socket=dict(type="path", default=DEFAULT_DOCKER_SOCKET),
            log_lines=dict(type="int", default=40),
            deep_check=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = wait_for_models(
            url=params["url"],
            model=params["model"],
            api_key=params["api_key"],
            timeout=params["timeout"],
            interval=params["interval"],
            refused_interval=params["refused_interval"],
            request_timeout=params["request_timeout"],
            container=params["container"],
            docker_socket=params["docker_socket"],
            log_lines=params["log_lines"],
            deep_check=params["deep_check"],
            validate_certs=params["validate_certs"],
            ca_path=params["ca_path"],
        )
    except WaitForModelsError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

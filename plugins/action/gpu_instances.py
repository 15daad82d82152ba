# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0
"""Action plugin of oci_gpu.vllm.gpu_instances: what only the controller can do before the module runs.

- The shape is checked against the collection's one shape table (plugin_utils/_oci_gpu_shapes.py), which a module
  cannot import (only module_utils travel with a module); the check itself is module_utils' `check_shape`.
- `user_data` defaults to the collection's cloud-init file, read here because the module cannot locate the collection.
"""

from __future__ import annotations

from pathlib import Path

from ansible.plugins.action import ActionBase
from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision import (
    DEFAULT_SHAPE,
    InvalidRequest,
    check_shape,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_shapes import GPU_SHAPES

CLOUD_INIT = Path(__file__).resolve().parents[2] / "playbooks" / "files" / "gpu-host-cloud-init.yml"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if args.get("state", "present") != "absent":
            try:
                check_shape(args.get("shape", DEFAULT_SHAPE), GPU_SHAPES)
            except InvalidRequest as exc:
                result.update(failed=True, changed=False, msg=exc.msg, kind=exc.kind)
                return result
            if args.get("user_data") is None:
                args["user_data"] = CLOUD_INIT.read_text(encoding="utf-8")
        result.update(
            self._execute_module(module_name="oci_gpu.vllm.gpu_instances", module_args=args, task_vars=task_vars)
        )
        return result

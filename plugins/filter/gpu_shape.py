# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0
"""Filter oci_gpu.vllm.gpu_shape: an OCI shape name -> the facts of the collection's one shape table."""

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_shapes import GPU_SHAPES, shape_facts


def gpu_shape(shape: Any) -> Dict[str, Any]:
    """Facts for SHAPE (see gpu_shape.yml); an unknown or empty name gives known=false and the known names."""
    if shape is None:
        shape = ""
    if not isinstance(shape, str):
        raise AnsibleFilterError(f"gpu_shape expects an OCI shape name (a string), got {type(shape).__name__}")
    facts = shape_facts(shape.strip())
    if not facts["known"]:
        facts["known_shapes"] = sorted(GPU_SHAPES)
    return facts


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"gpu_shape": gpu_shape}

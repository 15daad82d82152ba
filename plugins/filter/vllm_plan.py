# Copyright: contributors to the oci_gpu.vllm collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# or, at your option, Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: GPL-3.0-or-later OR Apache-2.0
"""Filter oci_gpu.vllm.vllm_plan: does a model fit a GPU shape under vLLM (see vllm_plan.yml, docs/sizing.md)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

from ansible.errors import AnsibleFilterError
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._vllm_plan import plan


def vllm_plan(
    model: Any,
    shape: Any = None,
    tensor_parallel_size: Any = 1,
    max_model_len: Any = 0,
    gpu_memory_utilization: Any = 0.9,
    quantization: Any = "",
    dtype: Any = "auto",
    kv_cache_dtype: Any = "auto",
    enforce_eager: Any = False,
    model_config: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The plan for MODEL (see vllm_plan.yml); wrong argument types raise, misfits come back as `problems`."""
    if not isinstance(model, str):
        raise AnsibleFilterError(f"vllm_plan expects a model id (a string), got {type(model).__name__}")
    if shape is not None and not isinstance(shape, (str, Mapping)):
        raise AnsibleFilterError(
            f"vllm_plan: shape must be a shape name or a gpu_shape dict, got {type(shape).__name__}"
        )
    if model_config is not None and not isinstance(model_config, Mapping):
        raise AnsibleFilterError(
            f"vllm_plan: model_config must be a dict (config.json), got {type(model_config).__name__}"
        )
    try:
        numbers = (int(tensor_parallel_size), int(max_model_len or 0), float(gpu_memory_utilization))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(
            f"vllm_plan: tensor_parallel_size, max_model_len, gpu_memory_utilization: {exc}"
        ) from exc
    return plan(
        model.strip(),
        shape=dict(shape) if isinstance(shape, Mapping) else shape,
        tensor_parallel_size=numbers[0],
        max_model_len=numbers[1],
        gpu_memory_utilization=numbers[2],
        quantization=str(quantization or ""),
        dtype=str(dtype or "auto"),
        kv_cache_dtype=str(kv_cache_dtype or "auto"),
        enforce_eager=_bool(enforce_eager),
        model_config=dict(model_config) if model_config else None,
    )


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"vllm_plan": vllm_plan}

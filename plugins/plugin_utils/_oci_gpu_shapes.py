# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one table of known OCI GPU shapes, and how an instance maps to a GPU family.

Shapes missing from the table still count as GPU shapes when OCI reports GPUs for them (shapeConfig.gpus > 0);
their family is then derived from the shape name so new shapes group sensibly before the table learns them.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional


class GpuShape(NamedTuple):
    family: str  # group name used by the inventory: a10, a100, h100, ...
    vendor: str
    model: str
    gpus: int  # GPUs per instance
    memory_gb: int  # memory per GPU


GPU_SHAPES: Dict[str, GpuShape] = {
    "VM.GPU2.1": GpuShape("p100", "NVIDIA", "Tesla P100", 1, 16),
    "BM.GPU2.2": GpuShape("p100", "NVIDIA", "Tesla P100", 2, 16),
    "VM.GPU3.1": GpuShape("v100", "NVIDIA", "Tesla V100", 1, 16),
    "VM.GPU3.2": GpuShape("v100", "NVIDIA", "Tesla V100", 2, 16),
    "VM.GPU3.4": GpuShape("v100", "NVIDIA", "Tesla V100", 4, 16),
    "BM.GPU3.8": GpuShape("v100", "NVIDIA", "Tesla V100", 8, 16),
    "VM.GPU.A10.1": GpuShape("a10", "NVIDIA", "A10", 1, 24),
    "VM.GPU.A10.2": GpuShape("a10", "NVIDIA", "A10", 2, 24),
    "BM.GPU.A10.4": GpuShape("a10", "NVIDIA", "A10", 4, 24),
    "BM.GPU4.8": GpuShape("a100", "NVIDIA", "A100 40GB", 8, 40),
    "BM.GPU.A100-v2.8": GpuShape("a100", "NVIDIA", "A100 80GB", 8, 80),
    "BM.GPU.H100.8": GpuShape("h100", "NVIDIA", "H100 80GB", 8, 80),
    "BM.GPU.H200.8": GpuShape("h200", "NVIDIA", "H200 141GB", 8, 141),
    "BM.GPU.L40S.4": GpuShape("l40s", "NVIDIA", "L40S", 4, 48),
    "BM.GPU.L40S-NC.4": GpuShape("l40s", "NVIDIA", "L40S", 4, 48),
    "BM.GPU.MI300X.8": GpuShape("mi300x", "AMD", "Instinct MI300X", 8, 192),
}

_FAMILY_FROM_NAME = re.compile(r"GPU\.([A-Za-z]+[0-9]+[A-Za-z]*)")


def gpu_shape(
    shape: str, reported_gpus: Optional[int] = None, gpu_description: Optional[str] = None
) -> Optional[GpuShape]:
    """The GPU facts for a shape, or None for a shape without GPUs."""
    known = GPU_SHAPES.get(shape)
    if known is not None:
        return known
    if not reported_gpus:
        return None
    match = _FAMILY_FROM_NAME.search(shape)
    family = match.group(1).lower() if match else "gpu_other"
    return GpuShape(family, "unknown", gpu_description or "unknown", int(reported_gpus), 0)

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one table of known OCI GPU shapes, and how an instance maps to a GPU family.

Everything that needs a shape's facts reads this table: the inventory plugin (groups, host vars), the roles (through
the `oci_gpu.vllm.gpu_shape` filter: GPU count, NVSwitch -> Fabric Manager, open kernel modules) and the sizing
planner (memory per GPU, architecture).

Shapes missing from the table still count as GPU shapes when OCI reports GPUs for them (shapeConfig.gpus > 0);
their family is then derived from the shape name so new shapes group sensibly before the table learns them, and
their memory is 0 (unknown): the planner then says it cannot size the host instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any, Dict, NamedTuple, Optional


class GpuShape(NamedTuple):
    family: str  # group name used by the inventory: a10, a100, h100, ...
    vendor: str
    model: str
    gpus: int  # GPUs per instance
    memory_gb: int  # memory per GPU as marketed (GB)
    memory_mib: int  # memory per GPU as nvidia-smi reports memory.total (MiB): what CUDA can allocate from
    arch: str  # pascal, volta, ampere, ada, hopper, cdna3
    compute_capability: str  # CUDA compute capability ("" for non-NVIDIA)
    nvswitch: bool  # GPUs joined by NVSwitch: the driver needs Fabric Manager
    open_modules: bool  # NVIDIA's open kernel modules support the GPU (Turing and newer)


# memory_mib: nvidia-smi's memory.total. H200: measured on the lent host (shared/reference/real-nvidia-h200-host.txt).
# The others are the totals nvidia-smi is commonly seen to print for these boards, NOT measured by us (H100 81559 MiB
# also appears in vllm-project/vllm PR #10511's log); ECC settings and driver versions move them by a few MiB.
GPU_SHAPES: Dict[str, GpuShape] = {
    "VM.GPU2.1": GpuShape("p100", "NVIDIA", "Tesla P100", 1, 16, 16280, "pascal", "6.0", False, False),
    "BM.GPU2.2": GpuShape("p100", "NVIDIA", "Tesla P100", 2, 16, 16280, "pascal", "6.0", False, False),
    "VM.GPU3.1": GpuShape("v100", "NVIDIA", "Tesla V100", 1, 16, 16160, "volta", "7.0", False, False),
    "VM.GPU3.2": GpuShape("v100", "NVIDIA", "Tesla V100", 2, 16, 16160, "volta", "7.0", False, False),
    "VM.GPU3.4": GpuShape("v100", "NVIDIA", "Tesla V100", 4, 16, 16160, "volta", "7.0", False, False),
    "BM.GPU3.8": GpuShape("v100", "NVIDIA", "Tesla V100", 8, 16, 16160, "volta", "7.0", False, False),
    "VM.GPU.A10.1": GpuShape("a10", "NVIDIA", "A10", 1, 24, 23028, "ampere", "8.6", False, True),
    "VM.GPU.A10.2": GpuShape("a10", "NVIDIA", "A10", 2, 24, 23028, "ampere", "8.6", False, True),
    "BM.GPU.A10.4": GpuShape("a10", "NVIDIA", "A10", 4, 24, 23028, "ampere", "8.6", False, True),
    "BM.GPU4.8": GpuShape("a100", "NVIDIA", "A100 40GB", 8, 40, 40960, "ampere", "8.0", True, True),
    "BM.GPU.A100-v2.8": GpuShape("a100", "NVIDIA", "A100 80GB", 8, 80, 81920, "ampere", "8.0", True, True),
    "BM.GPU.H100.8": GpuShape("h100", "NVIDIA", "H100 80GB", 8, 80, 81559, "hopper", "9.0", True, True),
    "BM.GPU.H200.8": GpuShape("h200", "NVIDIA", "H200 141GB", 8, 141, 143771, "hopper", "9.0", True, True),
    "BM.GPU.L40S.4": GpuShape("l40s", "NVIDIA", "L40S", 4, 48, 46068, "ada", "8.9", False, True),
    "BM.GPU.L40S-NC.4": GpuShape("l40s", "NVIDIA", "L40S", 4, 48, 46068, "ada", "8.9", False, True),
    "BM.GPU.MI300X.8": GpuShape("mi300x", "AMD", "Instinct MI300X", 8, 192, 0, "cdna3", "", False, False),
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
    description = gpu_description or "unknown"
    return GpuShape(family, "unknown", description, int(reported_gpus), 0, 0, "unknown", "", False, True)


def shape_facts(
    shape: str, reported_gpus: Optional[int] = None, gpu_description: Optional[str] = None
) -> Dict[str, Any]:
    """The published form of a shape's facts (host var `oci_gpu_shape`, filter `gpu_shape`): a plain dict.

    `known` is false for a shape the table lacks; `gpus` is 0 for a shape without GPUs.
    """
    gpu = gpu_shape(shape, reported_gpus, gpu_description)
    if gpu is None:
        return {"name": shape, "known": False, "gpus": 0}
    facts: Dict[str, Any] = dict(gpu._asdict())
    facts.update(name=shape, known=shape in GPU_SHAPES)
    return facts

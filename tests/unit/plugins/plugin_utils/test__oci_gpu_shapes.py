# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The GPU shape table (plugins/plugin_utils/_oci_gpu_shapes.py)."""

from __future__ import annotations

import pytest
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import sanitize_group
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_shapes import GPU_SHAPES, gpu_shape


# --- shape table ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, family, count, memory",
    [
        ("VM.GPU.A10.1", "a10", 1, 24),
        ("VM.GPU.A10.2", "a10", 2, 24),
        ("BM.GPU.A10.4", "a10", 4, 24),
        ("BM.GPU4.8", "a100", 8, 40),
        ("BM.GPU.A100-v2.8", "a100", 8, 80),
        ("BM.GPU.H100.8", "h100", 8, 80),
        ("BM.GPU.L40S-NC.4", "l40s", 4, 48),
        ("BM.GPU3.8", "v100", 8, 16),
    ],
)
def test_known_shapes(shape, family, count, memory):
    gpu = gpu_shape(shape)
    assert (gpu.family, gpu.gpus, gpu.memory_gb) == (family, count, memory)


def test_table_is_consistent():
    for name, gpu in GPU_SHAPES.items():
        assert gpu.family == sanitize_group(gpu.family).lower()
        assert int(name.rsplit(".", 1)[1]) == gpu.gpus, name  # OCI shape names end in the GPU count


def test_unknown_shapes():
    assert gpu_shape("VM.Standard.E4.Flex") is None
    assert gpu_shape("VM.Standard.E4.Flex", 0) is None
    new = gpu_shape("BM.GPU.B300.8", 8, "NVIDIA B300")
    assert (new.family, new.gpus, new.model) == ("b300", 8, "NVIDIA B300")

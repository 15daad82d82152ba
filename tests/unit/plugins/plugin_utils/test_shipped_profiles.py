"""Every shipped OCI profile (inventory/oci/group_vars: a GPU family's file, overridden by a shape's file) fits the
shapes it applies to, by the sizing planner the vllm_server role's preflight calls, and each family has a profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_shapes import GPU_SHAPES
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._vllm_plan import plan

GROUP_VARS = Path(__file__).resolve().parents[4] / "inventory" / "oci" / "group_vars"
# The shapes the collection ships a serving profile for (the list: A10.1/.2/.4, A100 40/80, H100, H200, L40S).
SERVED_FAMILIES = ("a10", "a100", "h100", "h200", "l40s")
ROLE_DEFAULTS = Path(__file__).resolve().parents[4] / "roles" / "vllm_server" / "defaults" / "main.yml"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def _profile(shape: str) -> dict:
    """What a host of SHAPE gets: role defaults < family group_vars < shape group_vars (the plugin's group nesting)."""
    family = GPU_SHAPES[shape].family
    merged = {k: v for k, v in _load(ROLE_DEFAULTS).items() if k.startswith("vllm_server_")}
    merged.update(_load(GROUP_VARS / f"{family}.yml"))
    merged.update(_load(GROUP_VARS / ("shape_" + shape.replace(".", "_").replace("-", "_") + ".yml")))
    return merged


SHAPES = sorted(name for name, gpu in GPU_SHAPES.items() if gpu.family in SERVED_FAMILIES)


def test_every_served_family_has_a_profile():
    assert SHAPES, "no shape of the served families in the shape table"
    for family in SERVED_FAMILIES:
        assert (GROUP_VARS / f"{family}.yml").is_file(), family


@pytest.mark.parametrize("shape", SHAPES)
def test_shipped_profile_fits_its_shape(shape):
    v = _profile(shape)
    result = plan(
        v["vllm_server_model"],
        shape=shape,
        tensor_parallel_size=v["vllm_server_tensor_parallel_size"],
        max_model_len=v["vllm_server_max_model_len"],
        gpu_memory_utilization=v["vllm_server_gpu_memory_utilization"],
        quantization=v["vllm_server_quantization"],
        dtype=v["vllm_server_dtype"],
        enforce_eager=v["vllm_server_enforce_eager"],
    )
    assert result["known_model"] and result["known_shape"], result
    assert result["problems"] == [] and result["fits"] is True, (shape, v["vllm_server_model"], result["problems"])
    assert result["max_concurrency"] >= 1

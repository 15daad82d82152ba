"""The sizing planner (plugins/plugin_utils/_vllm_plan.py) and its filter: parameter and weight arithmetic against
published sizes, KV-cache arithmetic, the seed's GPU cases, the config-only checks, unknown models and shapes.
Stdlib + ansible only. The CPU vLLM check of the exact KV figures is tests/functional/test_vllm_plan_cpu.py."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.oci_gpu.vllm.plugins.filter.vllm_plan import FilterModule
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._model_catalogue import (
    MODEL_CATALOGUE,
    PUBLISHED_SIZES,
    catalogue_entry,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_shapes import shape_facts
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._vllm_plan import (
    GPU_BLOCK_SIZE,
    Request,
    blocks_per_request,
    kv_bytes_per_token,
    kv_capacity,
    largest_fitting_len,
    model_spec,
    parameter_counts,
    plan,
    predict_cpu_kv_report,
    smallest_fitting_tp,
    weight_bytes,
)

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.2"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MIXTRAL_AWQ = "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ"
TUTORIAL_AWQ = "TheBloke/mixtral-8x7b-v0.1-AWQ"


def _spec(model):
    return model_spec(catalogue_entry(model)["config"])


# --- parameters and weights against published sizes -------------------------------------------------------------------
@pytest.mark.parametrize("model", [MISTRAL, MIXTRAL])
def test_parameter_count_matches_the_published_figure(model):
    total = sum(parameter_counts(_spec(model)).values())
    assert total == pytest.approx(PUBLISHED_SIZES[model]["parameters"], rel=0.005)


def test_mistral_parameter_count_is_exact():
    # Mistral 7B's well-known exact count: embeddings + lm_head + 32 x (q, k, v, o, 3 MLP matrices, 2 norms) + norm.
    assert sum(parameter_counts(_spec(MISTRAL)).values()) == 7_241_732_096


@pytest.mark.parametrize(
    "model, quantization",
    [
        (MISTRAL, ""),
        (MIXTRAL, ""),
        (MIXTRAL_AWQ, "awq_marlin"),
        ("TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "awq_marlin"),
        ("RedHatAI/Mixtral-8x7B-Instruct-v0.1-FP8", ""),
    ],
)
def test_weight_bytes_match_the_published_checkpoint_sizes(model, quantization):
    spec = _spec(model)
    act = "float16" if spec.quant_method == "awq" else "bfloat16"
    assert weight_bytes(spec, 1, quantization, act) / 1e9 == pytest.approx(
        PUBLISHED_SIZES[model]["checkpoint_gb"], rel=0.03
    )


def test_awq_mixtral_is_24_to_26_gb_and_online_fp8_halves_bf16():
    assert 24e9 <= weight_bytes(_spec(MIXTRAL_AWQ), 1, "", "float16") <= 26e9
    bf16 = weight_bytes(_spec(MIXTRAL), 1, "", "bfloat16")
    online_fp8 = weight_bytes(_spec(MIXTRAL), 1, "fp8", "bfloat16")
    assert online_fp8 == pytest.approx(bf16 / 2, rel=0.02)


def test_tensor_parallel_shards_linear_and_vocab_but_not_norms():
    spec = _spec(MIXTRAL)
    one, four = parameter_counts(spec, 1), parameter_counts(spec, 4)
    assert four["linear"] == one["linear"] // 4  # 8 KV heads split 4 ways: everything divides
    assert (
        four["embedding"] == one["embedding"] // 4 and four["norms"] == one["norms"] and four["router"] == one["router"]
    )


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    spec = model_spec({**catalogue_entry(MISTRAL)["config"], "num_key_value_heads": 2})
    assert kv_bytes_per_token(spec, 2, 2) == kv_bytes_per_token(spec, 1, 2) // 2
    assert kv_bytes_per_token(spec, 4, 2) == kv_bytes_per_token(spec, 2, 2)  # one (replicated) head per GPU
    assert parameter_counts(spec, 4)["linear"] > parameter_counts(spec, 1)["linear"] // 4


# --- KV cache ---------------------------------------------------------------------------------------------------------
def test_kv_bytes_per_token_gqa_and_head_dim():
    spec = _spec(MISTRAL)
    assert kv_bytes_per_token(spec, 1, 2) == 2 * 32 * 8 * 128 * 2
    assert kv_bytes_per_token(spec, 2, 2) == 2 * 32 * 4 * 128 * 2
    explicit = model_spec({**catalogue_entry(MISTRAL)["config"], "head_dim": 64})
    assert kv_bytes_per_token(explicit, 1, 1) == 2 * 32 * 8 * 64


def test_sliding_window_bounds_the_blocks_a_request_holds():
    full = blocks_per_request(32768, GPU_BLOCK_SIZE, None, 4096)
    window = blocks_per_request(32768, GPU_BLOCK_SIZE, 4096, 4096)
    assert full == 2048 and window == -(-(4096 - 1 + 4096) // 16) + 1
    assert blocks_per_request(100, GPU_BLOCK_SIZE, 4096, 4096) == 7 + 1  # short requests: the window never fills


def test_capacity_reserves_the_null_block_and_the_fit_is_the_boundary():
    page = GPU_BLOCK_SIZE * 1000
    cap = kv_capacity(10 * page + 5, 1000, 160, 4096, GPU_BLOCK_SIZE)
    assert (cap.num_blocks, cap.blocks_per_request, cap.fits, cap.kv_tokens) == (10, 10, False, 160)
    assert cap.max_model_len_fit == 9 * GPU_BLOCK_SIZE
    assert kv_capacity(10 * page, 1000, 9 * GPU_BLOCK_SIZE, 4096, GPU_BLOCK_SIZE).fits


def test_cpu_prediction_for_the_demo_model():
    config = {
        "architectures": ["MistralForCausalLM"],
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "vocab_size": 8000,
        "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16",
    }
    report = predict_cpu_kv_report(config, 1, dtype="bfloat16")
    # 2 (K, V) x 2 layers x 2 heads x 32 x 2 bytes = 512 B/token; 128-token blocks; 1 GiB / 64 KiB = 16384 blocks.
    assert (report["kv_bytes_per_token"], report["num_blocks"], report["blocks_per_request"]) == (512, 16384, 16)
    assert (report["kv_tokens"], report["max_concurrency_logged"]) == (16384 * 128, "1024.00")


# --- the seed's GPU cases ---------------------------------------------------------------------------------------------
SEED_CASES = [
    # model, shape, TP, max_model_len, utilization, quantization, fits
    (MISTRAL, "VM.GPU.A10.1", 1, 32768, 0.9, "", False),
    (MISTRAL, "VM.GPU.A10.1", 1, 16384, 0.9, "", True),
    (MISTRAL, "VM.GPU.A10.2", 2, 32768, 0.9, "", True),
    (MIXTRAL, "BM.GPU.A10.4", 4, 32768, 0.9, "", False),
    (MIXTRAL_AWQ, "BM.GPU.A10.4", 4, 8192, 0.95, "awq_marlin", True),
    (MIXTRAL, "BM.GPU4.8", 8, 32768, 0.9, "", True),
    (MIXTRAL, "BM.GPU.A100-v2.8", 8, 32768, 0.9, "", True),
    (MIXTRAL, "BM.GPU.H100.8", 8, 32768, 0.9, "", True),
    (MIXTRAL, "BM.GPU.H200.8", 8, 32768, 0.9, "", True),
    (MIXTRAL, "BM.GPU.L40S.4", 4, 32768, 0.9, "", True),
]


@pytest.mark.parametrize("model, shape, tp, length, util, quant, fits", SEED_CASES)
def test_seed_case(model, shape, tp, length, util, quant, fits):
    result = plan(
        model, shape, tensor_parallel_size=tp, max_model_len=length, gpu_memory_utilization=util, quantization=quant
    )
    assert result["known_model"] and result["known_shape"]
    assert result["fits"] is fits and bool(result["problems"]) is not fits, result["problems"]
    if fits:
        assert result["max_concurrency"] >= 1 and result["kv_tokens"] >= length
        assert result["max_model_len_fit"] >= length


def test_mistral_32k_on_one_a10_is_refused_with_what_would_fit():
    result = plan(MISTRAL, "VM.GPU.A10.1", max_model_len=32768)
    [problem] = result["problems"]
    assert problem.startswith("vllm_server_max_model_len=32768 needs 4.0 GiB of KV cache per sequence but VM.GPU.A10.1")
    assert (
        "vllm_server_gpu_memory_utilization=0.9" in problem
        and "VM.GPU.A10.2 with vllm_server_tensor_parallel_size=2" in problem
    )
    fit = result["max_model_len_fit"]
    assert f"use at most vllm_server_max_model_len={fit}" in problem and 16384 <= fit < 32768
    # The largest fit is the boundary: it fits, one block more does not.
    assert plan(MISTRAL, "VM.GPU.A10.1", max_model_len=fit)["fits"] is True
    assert plan(MISTRAL, "VM.GPU.A10.1", max_model_len=fit + GPU_BLOCK_SIZE)["fits"] is False


def test_mixtral_bf16_on_four_a10s_suggests_the_awq_instruct_build_or_a_bigger_shape():
    result = plan(MIXTRAL, "BM.GPU.A10.4", tensor_parallel_size=4)
    [problem] = result["problems"]
    assert "GiB of weights per GPU at vllm_server_tensor_parallel_size=4" in problem
    assert f"{MIXTRAL_AWQ} with vllm_server_quantization=awq_marlin" in problem
    shapes = [s["shape"] for s in result["suggestions"] if "shape" in s]
    assert shapes and all(plan(MIXTRAL, s, tensor_parallel_size=8 if s.endswith(".8") else 4)["fits"] for s in shapes)


def test_smallest_tp_and_largest_len_helpers():
    spec, req = _spec(MISTRAL), Request()
    assert smallest_fitting_tp(spec, shape_facts("VM.GPU.A10.2"), req, 32768) == 2
    assert smallest_fitting_tp(spec, shape_facts("VM.GPU.A10.1"), req, 16384) == 1
    assert smallest_fitting_tp(spec, shape_facts("VM.GPU.A10.1"), req, 32768) is None
    a10 = shape_facts("VM.GPU.A10.1")
    assert largest_fitting_len(spec, a10, 1, Request(gpu_memory_utilization=0.95)) > largest_fitting_len(
        spec, a10, 1, req
    )
    assert largest_fitting_len(spec, a10, 1, Request(enforce_eager=True)) > largest_fitting_len(spec, a10, 1, req)


def test_fp8_kv_cache_halves_bytes_per_token():
    auto = plan(MISTRAL, "VM.GPU.A10.1", max_model_len=16384)
    fp8 = plan(MISTRAL, "VM.GPU.A10.1", max_model_len=16384, kv_cache_dtype="fp8")
    assert fp8["kv_bytes_per_token"]["per_gpu"] * 2 == auto["kv_bytes_per_token"]["per_gpu"]
    assert fp8["kv_tokens"] == pytest.approx(2 * auto["kv_tokens"], rel=0.001)


# --- checks from the config alone (CPU hosts too) ---------------------------------------------------------------------
def test_tp_must_divide_the_attention_heads():
    result = plan(MISTRAL, None, tensor_parallel_size=3)
    assert result["fits"] is False
    assert any(
        "vllm_server_tensor_parallel_size=3 does not divide num_attention_heads=32" in p for p in result["problems"]
    )
    assert "use one of 1, 2, 4, 8" in result["problems"][0]


def test_tp_and_kv_heads_must_divide_one_another():
    config = {
        **catalogue_entry(MISTRAL)["config"],
        "num_attention_heads": 24,
        "num_key_value_heads": 6,
        "hidden_size": 3072,
    }
    result = plan("local/odd-kv", None, tensor_parallel_size=4, model_config=config)
    assert any("num_key_value_heads=6" in p for p in result["problems"]) and result["fits"] is False


def test_tp_above_the_shapes_gpus_is_refused():
    result = plan(MISTRAL, "VM.GPU.A10.2", tensor_parallel_size=4)
    assert any("vllm_server_tensor_parallel_size=4 but VM.GPU.A10.2 has 2 GPUs" in p for p in result["problems"])


def test_max_model_len_above_the_model_limit_is_refused():
    result = plan(MISTRAL, None, max_model_len=65536)
    [problem] = result["problems"]
    assert "vllm_server_max_model_len=65536 exceeds the model's max_position_embeddings=32768" in problem
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN" in problem and "use at most 32768" in problem


@pytest.mark.parametrize(
    "model, quantization, expected",
    [
        (MISTRAL, "awq", "is not an AWQ checkpoint"),
        (MIXTRAL_AWQ, "fp8", "quantized with awq"),
        (MISTRAL, "gguf-ish", "is not one the planner can size"),
    ],
)
def test_quantization_must_match_the_checkpoint(model, quantization, expected):
    result = plan(model, None, quantization=quantization)
    assert result["fits"] is False and any(expected in p for p in result["problems"]), result["problems"]


def test_awq_gets_the_marlin_advice_on_ampere_and_awq_marlin_does_not():
    awq = plan(TUTORIAL_AWQ, "BM.GPU.A10.4", tensor_parallel_size=4, max_model_len=8192, quantization="awq")
    assert any(n.startswith("vllm_server_quantization=awq: use awq_marlin") for n in awq["notes"])
    marlin = plan(MIXTRAL_AWQ, "BM.GPU.A10.4", tensor_parallel_size=4, max_model_len=8192, quantization="awq_marlin")
    assert not any("awq_marlin" in n for n in marlin["notes"]) and marlin["fits"] is True


def test_base_model_is_a_note_not_a_problem():
    result = plan(TUTORIAL_AWQ, None, quantization="awq_marlin", max_model_len=8192)
    assert result["problems"] == [] and result["fits"] is True
    assert any("BASE model (no chat template)" in n and MIXTRAL_AWQ in n for n in result["notes"])
    assert not any("BASE" in n for n in plan(MIXTRAL_AWQ, None)["notes"])


def test_catalogue_marks_chat_and_base_models():
    base = {name for name, entry in MODEL_CATALOGUE.items() if not entry["chat_template"]}
    assert base == {"mistralai/Mixtral-8x7B-v0.1", TUTORIAL_AWQ}
    assert all(entry["source"] for entry in MODEL_CATALOGUE.values())


# --- unknown models and shapes ----------------------------------------------------------------------------------------
def test_unknown_model_without_config_cannot_be_judged():
    result = plan("someone/unknown-model", "VM.GPU.A10.1")
    assert (result["known_model"], result["fits"], result["problems"]) == (False, None, [])
    assert "not in the planner's catalogue" in result["notes"][0]


def test_unknown_model_with_its_config_is_planned():
    config = dict(catalogue_entry(MISTRAL)["config"])
    mounted = plan("/opt/models/my-mistral", "VM.GPU.A10.1", max_model_len=16384, model_config=config)
    catalogued = plan(MISTRAL, "VM.GPU.A10.1", max_model_len=16384)
    assert mounted["known_model"] and mounted["fits"] is True
    assert mounted["kv_tokens"] == catalogued["kv_tokens"]


def test_unreadable_config_is_a_problem():
    result = plan("local/broken", None, model_config={"hidden_size": "big"})
    assert result["fits"] is False and "hidden_size" in result["problems"][0]


def test_shape_with_unknown_memory_runs_only_the_config_checks():
    facts = shape_facts("BM.GPU.X99.8", reported_gpus=8)
    result = plan(MISTRAL, facts, tensor_parallel_size=2)
    assert result["known_shape"] is False and result["fits"] is True and result["kv_tokens"] is None
    assert any("GPU fit was not computed" in n for n in result["notes"])
    mi300x = plan(MISTRAL, "BM.GPU.MI300X.8", tensor_parallel_size=3)
    assert mi300x["fits"] is False and mi300x["kv_tokens"] is None


def test_no_shape_is_a_cpu_host():
    result = plan(MISTRAL, None, max_model_len=16384)
    assert (
        result["fits"] is True
        and result["known_shape"] is False
        and result["weights_gib_per_gpu"] == pytest.approx(13.49, abs=0.01)
    )
    assert any("CPU host" in n for n in result["notes"])


# --- the filter -------------------------------------------------------------------------------------------------------
def test_filter_interface_takes_role_values_and_returns_plain_data():
    vllm_plan = FilterModule().filters()["vllm_plan"]
    result = vllm_plan(
        MISTRAL,
        shape=shape_facts("VM.GPU.A10.2"),
        tensor_parallel_size="2",  # role variables may arrive as strings
        max_model_len="32768",
        gpu_memory_utilization="0.9",
        quantization="",
        dtype="auto",
        kv_cache_dtype="auto",
        enforce_eager="false",
        model_config=None,
    )
    assert json.loads(json.dumps(result)) == result
    for key in (
        "known_model", "known_shape", "fits", "problems", "notes", "assumptions", "tensor_parallel_size",
        "weights_gib_per_gpu", "kv_bytes_per_token", "kv_cache_gib_per_gpu", "kv_tokens", "max_model_len",
        "max_model_len_fit", "max_concurrency",
    ):  # fmt: skip
        assert key in result, key
    assert result["fits"] is True and result["kv_bytes_per_token"] == {"per_gpu": 65536, "total": 131072}
    assert vllm_plan(MISTRAL, shape="VM.GPU.A10.1", max_model_len=32768)["fits"] is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": 7},
        {"model": MISTRAL, "shape": 5},
        {"model": MISTRAL, "model_config": "x"},
        {"model": MISTRAL, "tensor_parallel_size": "two"},
    ],
)
def test_filter_rejects_wrong_types(kwargs):
    model = kwargs.pop("model")
    with pytest.raises(AnsibleFilterError):
        FilterModule().filters()["vllm_plan"](model, **kwargs)

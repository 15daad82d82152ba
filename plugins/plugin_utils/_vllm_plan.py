# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Sizing planner: does a model fit an OCI GPU shape under vLLM, and with which settings?

Pure Python (no Ansible import): the filter `oci_gpu.vllm.vllm_plan`, the `oci-vllm plan` command and the unit tests
call `plan()`. The method and every assumption, with sources, are in docs/sizing.md; the constants below carry a
short why. Source read: vLLM 0.32.0 (the version the vllm_server role deploys and the CPU test image runs), files
named relative to the `vllm/` package.

Two kinds of figures:
- exact (vLLM's own arithmetic, verified against the real CPU vLLM by tests/functional/test_vllm_plan_cpu.py): the
  KV-cache bytes per token, block rounding, the "KV cache size: N tokens" and "Maximum concurrency" figures for a
  given KV memory, the largest max_model_len that memory holds; the parameter counts and weight bytes;
- estimated (what vLLM measures at start-up on the GPU: CUDA's total memory, activation peak, non-torch memory, CUDA
  graph memory): conservative constants, each with its source, plus a planning margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._model_catalogue import catalogue_entry, quantized_variants
from ._oci_gpu_shapes import GPU_SHAPES, shape_facts

GIB = 1 << 30
MIB = 1 << 20

# --- vLLM's own constants (exact) -------------------------------------------------------------------------------------
GPU_BLOCK_SIZE = 16  # config/cache.py CacheConfig.DEFAULT_BLOCK_SIZE (an attention backend may prefer another size)
CPU_BLOCK_SIZE = 128  # platforms/cpu.py check_and_update_config: block_size 128 unless the user sets one
VOCAB_PADDING = 64  # model_executor/layers/vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE
CPU_MAX_NUM_BATCHED_TOKENS = 2048  # engine/arg_utils.py get_batch_defaults: CPU, OpenAI server, x world size
TP_CANDIDATES = (1, 2, 4, 8)

# --- estimates (GPU), per GPU: see docs/sizing.md "Estimated terms" --------------------------------------------------
# cudaMemGetInfo's total (what vLLM multiplies by gpu_memory_utilization) is below nvidia-smi's memory.total by the
# driver's reservation: measured 615 MiB on the lent H200; 438 MiB on an H100 and ~430 MiB on a 24 GB card in
# published vLLM logs. Rounded up.
DRIVER_RESERVED_MIB = 640
# Non-torch memory allocated after vLLM's start snapshot (the CUDA context and NCCL init come before it and are not
# charged to the KV cache): attention/cuBLAS workspaces outside torch; with TP, NCCL's lazily allocated buffers.
NON_TORCH_BYTES = 256 * MIB
NON_TORCH_TP_BYTES = 1792 * MIB  # vLLM PR #10511 log: non_torch 1.79 GiB (TP1) -> 3.58 GiB (TP2), H100
# CUDA graphs (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1, default since v0.21, subtracts them from the KV cache):
# published "Graph capturing finished ..., took 0.31 GiB" to "Estimated CUDA graph memory: 1.10 GiB". Upper end.
CUDA_GRAPH_BYTES = 1 * GIB
# Workspaces the activation formula does not list (MoE/Marlin/attention workspaces, allocator rounding).
WORKSPACE_BYTES = 256 * MIB
ACTIVATION_SAFETY_FACTOR = 2  # temporaries the per-token formula leaves out (rotary copies, attention output)
# The planner's own margin for the estimates' uncertainty: a context that fits by less than this is refused, since
# it may start on one host and not on the next (other driver, other graph sizes). Not a vLLM figure.
PLANNING_MARGIN_BYTES = 1 * GIB

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}
KV_FP8_DTYPES = ("fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
AWQ_NAMES = ("awq", "awq_marlin", "auto_awq", "marlin")
KNOWN_QUANTIZATION = ("", *AWQ_NAMES, "fp8")

Shape = Union[str, Mapping[str, Any], None]


class PlanInputError(ValueError):
    """A model config the planner cannot read (missing or non-numeric fields)."""


# ------------------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class ModelSpec:
    """The config.json fields the planner reads, normalised."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    sliding_window: Optional[int]
    tied_embeddings: bool
    torch_dtype: str
    num_experts: int  # 0 for a dense model
    experts_per_token: int
    quant_method: str  # "" when unquantized
    quant_bits: int
    quant_group_size: int
    architectures: Tuple[str, ...]

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0


def _int_field(config: Mapping[str, Any], key: str, default: Optional[int] = None) -> int:
    value = config.get(key, default)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PlanInputError(f"model config field {key}={value!r}: a non-negative integer is needed")
    return int(value)


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """Read a Hugging Face config.json dict (text config of a decoder-only model)."""
    hidden = _int_field(config, "hidden_size")
    heads = _int_field(config, "num_attention_heads")
    if not heads:
        raise PlanInputError("model config field num_attention_heads=0: a positive integer is needed")
    quant = config.get("quantization_config") or {}
    window = config.get("sliding_window")
    return ModelSpec(
        hidden_size=hidden,
        num_layers=_int_field(config, "num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=_int_field(config, "num_key_value_heads", heads),
        # vLLM reads head_dim when set, else hidden_size // num_attention_heads (config/model.py get_head_size).
        head_dim=_int_field(config, "head_dim", hidden // heads) or hidden // heads,
        intermediate_size=_int_field(config, "intermediate_size"),
        vocab_size=_int_field(config, "vocab_size"),
        max_positions=_int_field(config, "max_position_embeddings", 2048),  # vLLM's default when no key is found
        sliding_window=int(window) if window else None,  # 0 means none (config/model.py)
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        torch_dtype=str(config.get("torch_dtype") or config.get("dtype") or "float32"),
        num_experts=_int_field(config, "num_local_experts", 0),
        experts_per_token=_int_field(config, "num_experts_per_tok", 0),
        quant_method=str(quant.get("quant_method", "")).lower(),
        quant_bits=int(quant.get("bits", quant.get("w_bit", 0)) or 0),
        quant_group_size=int(quant.get("group_size", quant.get("q_group_size", 0)) or 0),
        architectures=tuple(config.get("architectures") or ()),
    )


def parameter_counts(spec: ModelSpec, tp: int = 1) -> Dict[str, int]:
    """Parameters held by ONE GPU at tensor-parallel size `tp` (tp=1: the whole model), by kind.

    linear: the attention q/k/v/o and MLP (x experts) matrices, the ones AWQ/FP8 quantize. With TP, q/o and the MLP
    are split; k/v are split by KV head, each GPU keeping at least one (replicated when tp > KV heads, as
    QKVParallelLinear does); embeddings and lm_head are vocab-parallel (vocab padded to 64, then split); router
    and norms are replicated.
    """
    h, hd = spec.hidden_size, spec.head_dim
    heads_gpu = spec.num_heads // tp
    kv_gpu = max(1, spec.num_kv_heads // tp)
    inter_gpu = math.ceil(spec.intermediate_size / tp)
    vocab_gpu = math.ceil(_round_up(spec.vocab_size, VOCAB_PADDING) / tp) if tp > 1 else spec.vocab_size
    attention = (2 * heads_gpu + 2 * kv_gpu) * hd * h  # q + o, k + v
    mlp = 3 * h * inter_gpu * max(1, spec.num_experts)  # gate, up, down (per expert)
    return {
        "linear": spec.num_layers * (attention + mlp),
        "router": spec.num_layers * h * spec.num_experts,
        "norms": spec.num_layers * 2 * h + h,
        "embedding": vocab_gpu * h,
        "lm_head": 0 if spec.tied_embeddings else vocab_gpu * h,
    }


def resolve_dtype(spec: ModelSpec, dtype: str, compute_capability: str = "") -> str:
    """The activation dtype vLLM runs with: `auto` follows the config; fp16 where bf16 is unsupported (< 8.0)."""
    wanted = (dtype or "auto").lower()
    if wanted == "auto":
        wanted = spec.torch_dtype if spec.torch_dtype in DTYPE_BYTES else "bfloat16"
        if wanted == "float32":
            wanted = "float16"  # vLLM's `auto` serves fp32 checkpoints in fp16 (engine args --dtype help)
        if spec.quant_method == "awq":
            wanted = "float16"
        if wanted == "bfloat16" and compute_capability and _cc(compute_capability) < 80:
            wanted = "float16"
    return {"half": "float16", "float": "float32"}.get(wanted, wanted)


def weight_bytes(spec: ModelSpec, tp: int, quantization: str, act_dtype: str) -> int:
    """Bytes of weights on ONE GPU. AWQ: bits/8 per linear parameter plus fp16 scales and packed zero points per
    group; FP8 (checkpoint or online `--quantization fp8`): 1 byte per linear parameter plus per-tensor fp32 scales;
    everything else (embeddings, lm_head, norms, router) in the activation dtype."""
    counts = parameter_counts(spec, tp)
    act = DTYPE_BYTES[act_dtype]
    others = (counts["router"] + counts["norms"] + counts["embedding"] + counts["lm_head"]) * act
    method = effective_quantization(spec, quantization)
    if method == "awq":
        bits, group = spec.quant_bits or 4, spec.quant_group_size or 128
        per_param = bits / 8 + (2 + bits / 8) / group  # qweight + fp16 scales + packed zeros
        return int(counts["linear"] * per_param) + others
    if method == "fp8":
        scales = spec.num_layers * (4 + 3 * max(1, spec.num_experts)) * 2 * 4  # weight + input scale per module
        return counts["linear"] + scales + others
    return counts["linear"] * act + others


def effective_quantization(spec: ModelSpec, quantization: str) -> str:
    """The weight format vLLM ends up with: the checkpoint's, else the one asked for (`fp8` quantizes online)."""
    if spec.quant_method:
        return spec.quant_method
    return "fp8" if (quantization or "").lower() == "fp8" else ""


# ------------------------------------------------------------------------------------------------------------ KV cache


def kv_bytes_per_token(spec: ModelSpec, tp: int, kv_dtype_bytes: int) -> int:
    """KV-cache bytes per token on ONE GPU: K and V, every layer, this GPU's KV heads (at least one)."""
    return 2 * spec.num_layers * max(1, spec.num_kv_heads // tp) * spec.head_dim * kv_dtype_bytes


def kv_dtype_bytes(kv_cache_dtype: str, act_dtype: str) -> int:
    """`auto` stores the KV cache in the model dtype; the fp8 variants in one byte."""
    wanted = (kv_cache_dtype or "auto").lower()
    if wanted in KV_FP8_DTYPES:
        return 1
    return DTYPE_BYTES[act_dtype if wanted == "auto" else wanted]


def blocks_per_request(max_model_len: int, block_size: int, sliding_window: Optional[int], in_flight: int) -> int:
    """Blocks one request at max_model_len needs (v1/kv_cache_interface.py): full attention keeps every token;
    sliding window keeps the window plus the tokens in flight, plus one block for a window not block-aligned."""
    if sliding_window:
        tokens = min(sliding_window - 1 + in_flight, max_model_len)
        return _cdiv(tokens, block_size) + 1
    return _cdiv(max_model_len, block_size)


@dataclass(frozen=True)
class KvCapacity:
    """What vLLM derives from the KV memory (v1/core/kv_cache_utils.py, 0.32.0)."""

    num_blocks: int
    blocks_per_request: int
    fits: bool  # one request at max_model_len fits next to the null block (get_kv_cache_configs' check)
    kv_tokens: int  # "KV cache size: N tokens" = int(max_concurrency * max_model_len)
    max_concurrency: float  # "Maximum concurrency for L tokens per request: X"
    max_model_len_fit: int  # estimate_max_model_len's binary search, capped at the model's limit


def kv_capacity(
    kv_memory: int,
    bytes_per_token: int,
    max_model_len: int,
    model_limit: int,
    block_size: int,
    sliding_window: Optional[int] = None,
    in_flight: int = 0,
) -> KvCapacity:
    """Blocks, the fit check, tokens and concurrency exactly as vLLM computes them from `kv_memory` bytes."""
    page = block_size * bytes_per_token  # one block of every layer: the pool's bytes per block
    num_blocks = max(0, kv_memory // page)
    usable = num_blocks - 1  # BlockPool keeps one null block
    per_request = blocks_per_request(max_model_len, block_size, sliding_window, in_flight)
    concurrency = num_blocks / per_request if per_request else 0.0
    return KvCapacity(
        num_blocks=num_blocks,
        blocks_per_request=per_request,
        fits=usable >= per_request,
        kv_tokens=int(concurrency * max_model_len),
        max_concurrency=concurrency,
        max_model_len_fit=_largest_len(usable, model_limit, block_size, sliding_window, in_flight),
    )


def _largest_len(usable: int, limit: int, block_size: int, window: Optional[int], in_flight: int) -> int:
    """Largest length in [1, limit] whose request fits `usable` blocks (binary search, as vLLM's estimate)."""
    if usable < blocks_per_request(1, block_size, window, in_flight):
        return 0
    low, high, best = 1, limit, 1
    while low <= high:
        mid = (low + high) // 2
        if blocks_per_request(mid, block_size, window, in_flight) <= usable:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def predict_cpu_kv_report(
    config: Mapping[str, Any],
    kv_cache_space_gib: int,
    max_model_len: int = 0,
    dtype: str = "auto",
    kv_cache_dtype: str = "auto",
    max_num_batched_tokens: int = CPU_MAX_NUM_BATCHED_TOKENS,
) -> Dict[str, Any]:
    """The two figures the CPU vLLM logs at start, for VLLM_CPU_KVCACHE_SPACE=<GiB>: "CPU KV cache size: N tokens"
    and "Maximum concurrency for L tokens per request: X" (X as logged, 2 decimals).

    CPU: the KV space is exactly GiB * 2**30 bytes (platforms/cpu.py), the block size 128, TP 1, no async scheduling
    (so one batch in flight for sliding-window layers: config/vllm.py max_in_flight_tokens)."""
    spec = model_spec(config)
    act = resolve_dtype(spec, dtype)
    per_token = kv_bytes_per_token(spec, 1, kv_dtype_bytes(kv_cache_dtype, act))
    length = max_model_len or spec.max_positions
    cap = kv_capacity(
        kv_cache_space_gib * GIB,
        per_token,
        length,
        spec.max_positions,
        CPU_BLOCK_SIZE,
        spec.sliding_window,
        max_num_batched_tokens,
    )
    return {
        "dtype": act,
        "block_size": CPU_BLOCK_SIZE,
        "kv_bytes_per_token": per_token,
        "num_blocks": cap.num_blocks,
        "blocks_per_request": cap.blocks_per_request,
        "kv_tokens": cap.kv_tokens,
        "max_concurrency": round(cap.max_concurrency, 2),
        "max_concurrency_logged": "%.2f" % cap.max_concurrency,
        "max_model_len": length,
        "fits": cap.fits,
    }


# -------------------------------------------------------------------------------------------------------- GPU memory


def batch_defaults(cuda_total: int, gpu_model: str) -> Tuple[int, int]:
    """vLLM's default (max_num_batched_tokens, max_num_seqs) for the OpenAI server on this GPU class
    (engine/arg_utils.py get_batch_defaults: >= 160 GiB; >= 70 GiB and not A100; others)."""
    if cuda_total >= 160 * GIB:
        return 16384, 1024
    if cuda_total >= 70 * GIB and "a100" not in gpu_model.lower():
        return 8192, 1024
    return 2048, 256


def activation_peak_bytes(spec: ModelSpec, tp: int, act_dtype: str, batched_tokens: int, max_seqs: int) -> int:
    """Estimated torch peak of vLLM's profile run (max_num_batched_tokens tokens, then the sampler for max_num_seqs)
    above the weights: per token the residual and normed hidden state, q/k/v, and the MLP's widest moment (dense:
    gate_up + activation; MoE: fused_moe's caches for top-k experts + router logits), x ACTIVATION_SAFETY_FACTOR;
    the sampler's fp32 logits/probs/logprobs over the full vocabulary; plus fixed workspaces."""
    inter_gpu = math.ceil(spec.intermediate_size / tp)
    qkv = (spec.num_heads // tp + 2 * max(1, spec.num_kv_heads // tp)) * spec.head_dim
    if spec.is_moe:
        mlp = spec.experts_per_token * (3 * inter_gpu + spec.hidden_size) + spec.num_experts
    else:
        mlp = 3 * inter_gpu
    per_token = (2 * spec.hidden_size + qkv + mlp) * DTYPE_BYTES[act_dtype] * ACTIVATION_SAFETY_FACTOR
    sampler = max_seqs * _round_up(spec.vocab_size, VOCAB_PADDING) * 4 * 3
    return batched_tokens * per_token + sampler + WORKSPACE_BYTES


@dataclass(frozen=True)
class GpuBudget:
    """One GPU's memory as vLLM divides it (bytes)."""

    cuda_total: int
    requested: int  # ceil(cuda_total * gpu_memory_utilization): v1/worker/utils.py request_memory
    weights: int
    activation: int
    non_torch: int
    cuda_graphs: int
    margin: int
    max_num_batched_tokens: int
    max_num_seqs: int

    @property
    def kv_memory(self) -> int:
        """requested - non-KV memory (v1/worker/gpu_worker.py determine_available_memory) - planning margin."""
        return self.requested - self.weights - self.activation - self.non_torch - self.cuda_graphs - self.margin

    @property
    def before_kv(self) -> int:
        return self.requested - self.activation - self.non_torch - self.cuda_graphs - self.margin


def gpu_budget(
    spec: ModelSpec, facts: Mapping[str, Any], tp: int, utilization: float, weights: int, act: str, eager: bool
) -> GpuBudget:
    cuda_total = (int(facts["memory_mib"]) - DRIVER_RESERVED_MIB) * MIB
    batched, seqs = batch_defaults(cuda_total, str(facts.get("model", "")))
    return GpuBudget(
        cuda_total=cuda_total,
        requested=math.ceil(cuda_total * utilization),
        weights=weights,
        activation=activation_peak_bytes(spec, tp, act, batched, seqs),
        non_torch=NON_TORCH_BYTES + (NON_TORCH_TP_BYTES if tp > 1 else 0),
        cuda_graphs=0 if eager else CUDA_GRAPH_BYTES,
        margin=PLANNING_MARGIN_BYTES,
        max_num_batched_tokens=batched,
        max_num_seqs=seqs,
    )


# ------------------------------------------------------------------------------------------------------------ checks


def tp_problems(spec: ModelSpec, tp: int, gpus: Optional[int], shape_name: str) -> List[str]:
    """vLLM's TP rules (config/model.py verify_with_parallel_config; model_executor/layers/linear.py)."""
    problems = []
    allowed = ", ".join(str(t) for t in valid_tp_sizes(spec, gpus))
    if tp < 1:
        return [f"vllm_server_tensor_parallel_size={tp} is not allowed: use one of {allowed}"]
    if spec.num_heads % tp:
        problems.append(
            f"vllm_server_tensor_parallel_size={tp} does not divide num_attention_heads={spec.num_heads}: "
            f"vLLM refuses it; use one of {allowed}"
        )
    elif spec.num_kv_heads % tp and tp % spec.num_kv_heads:
        problems.append(
            f"vllm_server_tensor_parallel_size={tp} and num_key_value_heads={spec.num_kv_heads}: one must divide "
            f"the other for vLLM to split or replicate the KV heads; use one of {allowed}"
        )
    if gpus and tp > gpus:
        problems.append(f"vllm_server_tensor_parallel_size={tp} but {shape_name} has {gpus} GPUs: use one of {allowed}")
    return problems


def valid_tp_sizes(spec: ModelSpec, gpus: Optional[int] = None) -> List[int]:
    """Tensor-parallel sizes vLLM accepts for this model (and this many GPUs)."""
    return [
        tp
        for tp in TP_CANDIDATES
        if spec.num_heads % tp == 0
        and (spec.num_kv_heads % tp == 0 or tp % spec.num_kv_heads == 0)
        and (not gpus or tp <= gpus)
    ]


def quantization_findings(spec: ModelSpec, quantization: str, cc: str) -> Tuple[List[str], List[str]]:
    """(problems, notes) for vllm_server_quantization against the checkpoint (config/model.py _verify_quantization)."""
    q = (quantization or "").lower()
    problems: List[str] = []
    notes: List[str] = []
    if q not in KNOWN_QUANTIZATION:
        problems.append(
            f"vllm_server_quantization={quantization!r} is not one the planner can size: use one of "
            + ", ".join(repr(k) for k in KNOWN_QUANTIZATION)
        )
        return problems, notes
    method = spec.quant_method
    if method and q and not (method == "awq" and q in AWQ_NAMES) and method != q:
        problems.append(
            f"vllm_server_quantization={q} but the checkpoint is quantized with {method}: vLLM refuses the mismatch; "
            f"use {'awq_marlin' if method == 'awq' else method} or '' (detected from the checkpoint)"
        )
    elif not method and q in AWQ_NAMES:
        problems.append(
            f"vllm_server_quantization={q} but the model is not an AWQ checkpoint (no quantization_config): vLLM "
            "fails to load it; use '' for this model or an AWQ build"
        )
    elif method == "awq" and cc and _cc(cc) >= 80 and q == "awq":
        notes.append(
            f"vllm_server_quantization=awq: use awq_marlin on compute capability {cc} (>= 8.0) for "
            "the Marlin kernels; vLLM releases before the AutoAWQ rework force the slow AWQ GEMM kernel for an "
            "explicit 'awq' (vLLM 0.32.0 routes awq, awq_marlin and auto_awq alike and picks Marlin itself)"
        )
    if (method == "awq" or q in AWQ_NAMES) and cc and _cc(cc) < 75:
        problems.append(f"AWQ needs compute capability >= 7.5 in vLLM; this GPU has {cc}")
    if q == "fp8" and not method:
        notes.append("vllm_server_quantization=fp8 on an unquantized checkpoint: vLLM quantizes the weights at load")
    if effective_quantization(spec, q) == "fp8" and cc and _cc(cc) < 89:
        notes.append(f"FP8 on compute capability {cc} (< 8.9) runs weight-only (FP8 Marlin): memory as FP8, not speed")
    return problems, notes


def model_len_problems(spec: ModelSpec, max_model_len: int) -> List[str]:
    """vLLM refuses a max_model_len above the model's own limit (config/model.py _get_and_verify_max_len)."""
    if max_model_len < 0:
        return [f"vllm_server_max_model_len={max_model_len} is not allowed: use 0 (the model's limit) or 1..N"]
    if max_model_len > spec.max_positions:
        return [
            f"vllm_server_max_model_len={max_model_len} exceeds the model's max_position_embeddings="
            f"{spec.max_positions}: vLLM refuses it (unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1, which risks wrong "
            f"output); use at most {spec.max_positions}"
        ]
    return []


# ------------------------------------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class Request:
    """The vllm_server settings a plan is for."""

    tensor_parallel_size: int = 1
    max_model_len: int = 0
    gpu_memory_utilization: float = 0.9
    quantization: str = ""
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    enforce_eager: bool = False


def plan(
    model: str,
    shape: Shape = None,
    tensor_parallel_size: int = 1,
    max_model_len: int = 0,
    gpu_memory_utilization: float = 0.9,
    quantization: str = "",
    dtype: str = "auto",
    kv_cache_dtype: str = "auto",
    enforce_eager: bool = False,
    model_config: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The whole plan as a plain (JSON-able) dict: see docs/sizing.md and the filter's RETURN for the keys."""
    req = Request(
        int(tensor_parallel_size),
        int(max_model_len or 0),
        float(gpu_memory_utilization),
        quantization or "",
        dtype or "auto",
        kv_cache_dtype or "auto",
        bool(enforce_eager),
    )
    facts = resolve_shape(shape)
    result = _empty_result(model, facts, req)
    config, chat_template = _model_config(model, model_config)
    if config is None:
        result["notes"].append(
            f"vllm_server_model={model!r} is not in the planner's catalogue and no model_config (config.json) was "
            "given: nothing checked; give the model's config.json to plan it"
        )
        return result
    try:
        spec = model_spec(config)
    except PlanInputError as exc:
        result["problems"].append(f"vllm_server_model={model!r}: {exc}")
        result["fits"] = False
        return result
    result["known_model"] = True
    _check_and_size(model, spec, chat_template, facts, req, result)
    return result


def resolve_shape(shape: Shape) -> Dict[str, Any]:
    """Shape facts from a name (the shared table) or a dict from shape_facts(); {} for no shape (a CPU host)."""
    if not shape:
        return {}
    if isinstance(shape, str):
        return shape_facts(shape)
    return dict(shape)


def _model_config(model: str, given: Optional[Mapping[str, Any]]) -> Tuple[Optional[Mapping[str, Any]], Optional[bool]]:
    if given:
        entry = catalogue_entry(model)
        return given, (entry["chat_template"] if entry else None)
    entry = catalogue_entry(model)
    if entry is None:
        return None, None
    return entry["config"], entry["chat_template"]


def _empty_result(model: str, facts: Mapping[str, Any], req: Request) -> Dict[str, Any]:
    return {
        "model": model,
        "shape": facts.get("name", ""),
        "known_model": False,
        "known_shape": bool(facts.get("known")),
        "fits": None,
        "problems": [],
        "notes": [],
        "assumptions": [],
        "suggestions": [],
        "tensor_parallel_size": req.tensor_parallel_size,
        "gpu_memory_utilization": req.gpu_memory_utilization,
        "quantization": req.quantization,
        "dtype": req.dtype,
        "kv_cache_dtype": req.kv_cache_dtype,
        "enforce_eager": req.enforce_eager,
        "weights_gib_total": None,
        "weights_gib_per_gpu": None,
        "kv_bytes_per_token": None,
        "kv_cache_gib_per_gpu": None,
        "kv_tokens": None,
        "max_model_len": req.max_model_len or None,
        "max_model_len_fit": None,
        "max_concurrency": None,
        "memory_gib_per_gpu": None,
    }


def _check_and_size(
    model: str,
    spec: ModelSpec,
    chat_template: Optional[bool],
    facts: Mapping[str, Any],
    req: Request,
    result: Dict[str, Any],
) -> None:
    problems, notes = result["problems"], result["notes"]
    shape_name = str(facts.get("name", ""))
    gpus = int(facts.get("gpus") or 0) or None
    cc = str(facts.get("compute_capability") or "")
    length = req.max_model_len or spec.max_positions
    result["max_model_len"] = length

    problems.extend(tp_problems(spec, req.tensor_parallel_size, gpus, shape_name))
    problems.extend(model_len_problems(spec, req.max_model_len))
    quant_problems, quant_notes = quantization_findings(spec, req.quantization, cc)
    problems.extend(quant_problems)
    notes.extend(quant_notes)
    if not 0 < req.gpu_memory_utilization <= 1:
        problems.append(
            f"vllm_server_gpu_memory_utilization={req.gpu_memory_utilization} is not allowed: use a fraction in (0, 1]"
        )
    try:
        act = resolve_dtype(spec, req.dtype, cc)
        kv_bytes = kv_dtype_bytes(req.kv_cache_dtype, act)
    except KeyError:
        problems.append(
            f"vllm_server_dtype={req.dtype!r} / kv_cache_dtype={req.kv_cache_dtype!r}: use auto, bfloat16, float16, "
            f"float32 (kv_cache_dtype also {', '.join(KV_FP8_DTYPES)})"
        )
        result["fits"] = False
        return
    _model_notes(model, spec, chat_template, notes)
    result["assumptions"].extend(_assumptions(spec, length))

    tp = (
        req.tensor_parallel_size
        if req.tensor_parallel_size >= 1 and spec.num_heads % req.tensor_parallel_size == 0
        else 1
    )
    weights_total = weight_bytes(spec, 1, req.quantization, act)
    weights_gpu = weight_bytes(spec, tp, req.quantization, act)
    per_token = kv_bytes_per_token(spec, tp, kv_bytes)
    result.update(
        tensor_parallel_size=tp,
        dtype=act,
        weights_gib_total=_gib(weights_total),
        weights_gib_per_gpu=_gib(weights_gpu),
        kv_bytes_per_token={"per_gpu": per_token, "total": per_token * tp},
    )
    if not gpus or not int(facts.get("memory_mib") or 0):
        result["fits"] = not problems
        if gpus:
            notes.append(
                f"{shape_name}: GPU memory per GPU unknown (shape not in the table or not NVIDIA-sized): the GPU fit "
                "was not computed, only the config checks"
            )
        else:
            notes.append("no GPU shape given (CPU host): only the config checks ran, no GPU memory fit")
        return
    _size_on_gpu(model, spec, facts, req, result)


@dataclass(frozen=True)
class Sizing:
    """A model on `tp` GPUs of a shape: the budget of one GPU and what its KV memory holds."""

    budget: GpuBudget
    kv_bytes_per_token: int  # one GPU
    capacity: KvCapacity


def sizing(spec: ModelSpec, facts: Mapping[str, Any], tp: int, req: Request, length: int) -> Sizing:
    """Size `spec` at `tp` on one GPU of `facts` for requests of `length` tokens (facts must have memory_mib)."""
    act = resolve_dtype(spec, req.dtype, str(facts.get("compute_capability") or ""))
    weights = weight_bytes(spec, tp, req.quantization, act)
    budget = gpu_budget(spec, facts, tp, req.gpu_memory_utilization, weights, act, req.enforce_eager)
    per_token = kv_bytes_per_token(spec, tp, kv_dtype_bytes(req.kv_cache_dtype, act))
    in_flight = 2 * budget.max_num_batched_tokens  # async scheduling keeps 2 batches in flight (config/vllm.py)
    memory = max(0, budget.kv_memory)
    cap = kv_capacity(memory, per_token, length, spec.max_positions, GPU_BLOCK_SIZE, spec.sliding_window, in_flight)
    return Sizing(budget, per_token, cap)


def fits_on(spec: ModelSpec, facts: Mapping[str, Any], tp: int, req: Request, length: int) -> bool:
    """Whether one request at `length` fits `tp` GPUs of a shape with these settings (memory only)."""
    if not int(facts.get("memory_mib") or 0) or tp > int(facts.get("gpus") or 0):
        return False
    fit = sizing(spec, facts, tp, req, length)
    return fit.budget.kv_memory > 0 and fit.capacity.fits


def smallest_fitting_tp(spec: ModelSpec, facts: Mapping[str, Any], req: Request, length: int) -> Optional[int]:
    """The smallest TP (1, 2, 4, 8 that vLLM accepts, <= the shape's GPUs) at which `length` fits, or None."""
    for tp in valid_tp_sizes(spec, int(facts.get("gpus") or 0)):
        if fits_on(spec, facts, tp, req, length):
            return tp
    return None


def largest_fitting_len(spec: ModelSpec, facts: Mapping[str, Any], tp: int, req: Request) -> int:
    """The largest max_model_len that fits at this TP (0: not even the weights, or not one block)."""
    return sizing(spec, facts, tp, req, spec.max_positions).capacity.max_model_len_fit


def _size_on_gpu(model: str, spec: ModelSpec, facts: Mapping[str, Any], req: Request, result: Dict[str, Any]) -> None:
    tp, length = result["tensor_parallel_size"], result["max_model_len"]
    fit = sizing(spec, facts, tp, req, length)
    budget, cap, per_token = fit.budget, fit.capacity, fit.kv_bytes_per_token
    kv_memory = max(0, budget.kv_memory)
    result.update(
        kv_gib_per_sequence_per_gpu=_gib(cap.blocks_per_request * GPU_BLOCK_SIZE * per_token),
        kv_cache_gib_per_gpu=_gib(kv_memory),
        kv_tokens=cap.kv_tokens,
        max_model_len_fit=cap.max_model_len_fit,
        max_concurrency=round(cap.max_concurrency, 2),
        memory_gib_per_gpu={
            "nvidia_smi_total": round(int(facts["memory_mib"]) / 1024, 2),
            "cuda_total": _gib(budget.cuda_total),
            "requested": _gib(budget.requested),
            "weights": _gib(budget.weights),
            "activation_peak": _gib(budget.activation),
            "non_torch": _gib(budget.non_torch),
            "cuda_graphs": _gib(budget.cuda_graphs),
            "planning_margin": _gib(budget.margin),
            "kv_cache": _gib(kv_memory),
        },
        max_num_batched_tokens=budget.max_num_batched_tokens,
        max_num_seqs=budget.max_num_seqs,
    )
    name = str(facts.get("name", ""))
    util = f"vllm_server_gpu_memory_utilization={req.gpu_memory_utilization}"
    if budget.kv_memory > 0 and cap.fits:
        result["fits"] = not result["problems"]
        return
    fix = _suggest(model, spec, facts, req, length)
    result["suggestions"] = fix
    if budget.kv_memory <= 0:
        result["problems"].append(
            f"vllm_server_model={model} needs {_gib(budget.weights)} GiB of weights per GPU at "
            f"vllm_server_tensor_parallel_size={tp} but {name} leaves {_gib(budget.before_kv)} GiB per GPU for "
            f"weights and KV cache at {util}{_alternatives(fix, with_len=False)}"
        )
    else:
        need = cap.blocks_per_request * GPU_BLOCK_SIZE * per_token
        result["problems"].append(
            f"vllm_server_max_model_len={length} needs {_gib(need)} GiB of KV cache per sequence but {name} leaves "
            f"{_gib(kv_memory)} GiB at {util}{_alternatives(fix, with_len=True)}"
        )
    result["fits"] = False


def _suggest(model: str, spec: ModelSpec, facts: Mapping[str, Any], req: Request, length: int) -> List[Dict[str, Any]]:
    """What would fit instead, best first: a shorter context here, a larger TP here, a quantized build here, a
    shape of the same GPU family (then any NVIDIA Ampere+ shape) with the smallest TP that fits."""
    out: List[Dict[str, Any]] = []
    tp = max(1, req.tensor_parallel_size)
    shorter = largest_fitting_len(spec, facts, tp, req) if spec.num_heads % tp == 0 else 0
    if 0 < shorter < length:
        out.append({"vllm_server_max_model_len": shorter})
    here_tp = smallest_fitting_tp(spec, facts, req, length)
    if here_tp and here_tp != tp:
        out.append({"vllm_server_tensor_parallel_size": here_tp})
    for name, entry in quantized_variants(model).items():
        variant = model_spec(entry["config"])
        quant = "awq_marlin" if variant.quant_method == "awq" else ""
        vreq = Request(
            tp, req.max_model_len, req.gpu_memory_utilization, quant, req.dtype, req.kv_cache_dtype, req.enforce_eager
        )
        vtp = tp if fits_on(variant, facts, tp, vreq, length) else smallest_fitting_tp(variant, facts, vreq, length)
        if vtp:
            out.append(
                {"vllm_server_model": name, "vllm_server_quantization": quant, "vllm_server_tensor_parallel_size": vtp}
            )
    out.extend(_other_shapes(spec, facts, req, length))
    return out


def _other_shapes(
    spec: ModelSpec, facts: Mapping[str, Any], req: Request, length: int, limit: int = 2
) -> List[Dict[str, Any]]:
    """Up to `limit` other shapes that fit (one per GPU family): the same family first, then by total GPU memory."""
    current, family = str(facts.get("name", "")), facts.get("family")
    ampere_plus = [n for n, s in GPU_SHAPES.items() if s.compute_capability and _cc(s.compute_capability) >= 80]
    by_size = sorted(
        ampere_plus,
        key=lambda n: (GPU_SHAPES[n].family != family, GPU_SHAPES[n].gpus * GPU_SHAPES[n].memory_mib, n.count("-"), n),
    )
    found: List[Dict[str, Any]] = []
    families = set()
    for name in by_size:
        if name == current or GPU_SHAPES[name].family in families:
            continue
        tp = smallest_fitting_tp(spec, shape_facts(name), req, length)
        if tp:
            found.append({"shape": name, "vllm_server_tensor_parallel_size": tp})
            families.add(GPU_SHAPES[name].family)
        if len(found) == limit:
            break
    return found


def _alternatives(suggestions: Sequence[Mapping[str, Any]], with_len: bool) -> str:
    phrases = []
    for s in suggestions:
        if "vllm_server_max_model_len" in s:
            if with_len:
                phrases.append(f"use at most vllm_server_max_model_len={s['vllm_server_max_model_len']}")
        elif "vllm_server_model" in s:
            quant = (
                f" with vllm_server_quantization={s['vllm_server_quantization']}"
                if s["vllm_server_quantization"]
                else ""
            )
            phrases.append(
                f"{s['vllm_server_model']}{quant} (tensor_parallel_size {s['vllm_server_tensor_parallel_size']})"
            )
        elif "shape" in s:
            phrases.append(
                f"{s['shape']} with vllm_server_tensor_parallel_size={s['vllm_server_tensor_parallel_size']}"
            )
        else:
            phrases.append(f"vllm_server_tensor_parallel_size={s['vllm_server_tensor_parallel_size']}")
    return (": " + ", or ".join(phrases)) if phrases else ": no catalogue build or shape in the table fits"


def _model_notes(model: str, spec: ModelSpec, chat_template: Optional[bool], notes: List[str]) -> None:
    if chat_template is False:
        entry = catalogue_entry(model) or {}
        instead = entry.get("instruct_variant")
        notes.append(
            f"vllm_server_model={model} is a BASE model (no chat template): /v1/completions works, "
            "/v1/chat/completions fails" + (f"; the chat build is {instead}" if instead else "")
        )
    if spec.sliding_window:
        notes.append(
            f"sliding_window={spec.sliding_window}: each request keeps at most the window plus the tokens in flight, "
            "so long contexts need less KV cache than full attention"
        )


def _assumptions(spec: ModelSpec, length: int) -> List[str]:
    return [
        "vLLM 0.32.0 arithmetic (v1/core/kv_cache_utils.py, v1/worker/gpu_worker.py); GPU block size 16",
        f"max_model_len {length}: {'given' if length != spec.max_positions else 'the model limit'} "
        "(a tokenizer model_max_length below it would lower vLLM's default further)",
        f"CUDA total = nvidia-smi memory.total - {DRIVER_RESERVED_MIB} MiB driver reservation (estimate)",
        "activation peak, non-torch memory (1.75 GiB more with TP > 1) and CUDA graphs (1 GiB, 0 with enforce_eager) "
        "are estimates, plus a 1 GiB planning margin: see docs/sizing.md",
        "CUDA context and NCCL set-up are taken before vLLM's memory snapshot: they must fit in "
        "(1 - gpu_memory_utilization) of the GPU, not in the KV budget",
    ]


def _gib(value: int) -> float:
    return round(value / GIB, 2)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def _cc(value: str) -> int:
    """'8.6' -> 86."""
    parts = value.split(".", 1)
    major, minor = parts[0], (parts[1] if len(parts) > 1 else "")
    return int(major) * 10 + int(minor or 0)

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A small catalogue of model configs: the fields of each model's Hugging Face `config.json` the sizing planner
(`_vllm_plan.py`) needs, so the seed's models can be planned without the hub.

Sources. The hub is not reachable from the machines this collection is built on, so the figures are the models'
published `config.json` values as widely reproduced (model cards, vLLM/transformers issues), cross-checked where a
stored copy was found with the project's search tools: a stored dump of Mixtral-8x7B-Instruct-v0.1's MixtralConfig
(hidden_size 4096, intermediate_size 14336, 32 layers, 32 heads, 8 KV heads, head_dim 128, 8 experts / 2 per token,
max_position_embeddings 32768), and AutoAWQ's Mixtral quantization recipe (w_bit 4, q_group_size 128, zero_point,
GEMM, modules_to_not_convert ["gate"]) that TheBloke's AWQ builds follow. Published checkpoint sizes the unit tests
compare the planner's parameter arithmetic against are in `PUBLISHED_SIZES`.

`chat_template`: True for instruct/chat builds (their tokenizer_config.json carries a chat template, so
/v1/chat/completions works), False for base models (completions only).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

# The two architectures' shared figures (Mistral 7B and Mixtral 8x7B share attention and MLP widths).
_MISTRAL_7B: Dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
_MIXTRAL_8X7B: Dict[str, Any] = {
    **_MISTRAL_7B,
    "architectures": ["MixtralForCausalLM"],
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
}
# TheBloke's AWQ builds (AutoAWQ, GEMM kernels): 4-bit weights, groups of 128 with zero points, fp16 activations;
# Mixtral's router ("gate") is left unquantized.
_AWQ_GEMM_4BIT: Dict[str, Any] = {
    "quant_method": "awq",
    "bits": 4,
    "group_size": 128,
    "zero_point": True,
    "version": "gemm",
}


def _entry(config: Dict[str, Any], chat_template: bool, source: str, **extra: Any) -> Dict[str, Any]:
    return {"config": config, "chat_template": chat_template, "source": source, **extra}


MODEL_CATALOGUE: Dict[str, Dict[str, Any]] = {
    # huggingface.co/mistralai/Mistral-7B-Instruct-v0.2/blob/main/config.json (published values): rope_theta 1e6 and
    # sliding_window null since v0.2 (v0.1 had 4096); 32k context. Instruct: [INST] chat template.
    "mistralai/Mistral-7B-Instruct-v0.2": _entry(
        dict(_MISTRAL_7B), True, "config.json published on huggingface.co (mistralai), values as widely reproduced"
    ),
    # huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json: as v0.2 with the vocabulary extended
    # to 32768 (control tokens for function calling).
    "mistralai/Mistral-7B-Instruct-v0.3": _entry(
        {**_MISTRAL_7B, "vocab_size": 32768},
        True,
        "config.json published on huggingface.co (mistralai): v0.2 plus vocab_size 32768",
    ),
    # huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1/blob/main/config.json; cross-checked against a stored
    # MixtralConfig dump of this model (see the module docstring).
    "mistralai/Mixtral-8x7B-Instruct-v0.1": _entry(
        dict(_MIXTRAL_8X7B), True, "config.json on huggingface.co (mistralai); stored MixtralConfig dump agrees"
    ),
    # huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json: the BASE model (no chat template).
    "mistralai/Mixtral-8x7B-v0.1": _entry(
        dict(_MIXTRAL_8X7B), False, "config.json on huggingface.co (mistralai), same architecture as the Instruct"
    ),
    # huggingface.co/TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ/blob/main/config.json: Mixtral + AWQ quantization_config,
    # torch_dtype float16 (AWQ kernels run in fp16).
    "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ": _entry(
        {
            **_MIXTRAL_8X7B,
            "torch_dtype": "float16",
            "quantization_config": {**_AWQ_GEMM_4BIT, "modules_to_not_convert": ["gate"]},
        },
        True,
        "config.json on huggingface.co (TheBloke): AutoAWQ 4-bit, group 128, zero point, GEMM; router unquantized",
    ),
    # huggingface.co/TheBloke/mixtral-8x7b-v0.1-AWQ: the reference tutorial's model. A BASE model: it has no chat
    # template, so /v1/chat/completions fails on it; kept so the planner can recognise and explain it.
    "TheBloke/mixtral-8x7b-v0.1-AWQ": _entry(
        {
            **_MIXTRAL_8X7B,
            "torch_dtype": "float16",
            "quantization_config": {**_AWQ_GEMM_4BIT, "modules_to_not_convert": ["gate"]},
        },
        False,
        "config.json on huggingface.co (TheBloke): AWQ build of the base Mixtral-8x7B-v0.1",
        instruct_variant="TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ",
    ),
    # huggingface.co/TheBloke/Mistral-7B-Instruct-v0.2-AWQ/blob/main/config.json.
    "TheBloke/Mistral-7B-Instruct-v0.2-AWQ": _entry(
        {**_MISTRAL_7B, "torch_dtype": "float16", "quantization_config": dict(_AWQ_GEMM_4BIT)},
        True,
        "config.json on huggingface.co (TheBloke): AutoAWQ 4-bit, group 128, zero point, GEMM",
    ),
    # huggingface.co/RedHatAI/Mixtral-8x7B-Instruct-v0.1-FP8 (formerly neuralmagic/...): AutoFP8 checkpoint, FP8 E4M3
    # weights with per-tensor scales and static activation scales; the router gates and lm_head stay in bf16.
    "RedHatAI/Mixtral-8x7B-Instruct-v0.1-FP8": _entry(
        {
            **_MIXTRAL_8X7B,
            "quantization_config": {
                "quant_method": "fp8",
                "activation_scheme": "static",
                "ignored_layers": ["lm_head", "block_sparse_moe.gate"],
            },
        },
        True,
        "config.json on huggingface.co (RedHatAI, formerly neuralmagic): AutoFP8, static activation scales",
    ),
}
MODEL_ALIASES: Dict[str, str] = {
    "neuralmagic/Mixtral-8x7B-Instruct-v0.1-FP8": "RedHatAI/Mixtral-8x7B-Instruct-v0.1-FP8",
}

# Published sizes the planner's arithmetic is checked against (unit tests): parameter counts from the model cards /
# Mistral's announcements, checkpoint sizes as the hub lists the safetensors files (decimal GB).
PUBLISHED_SIZES: Dict[str, Dict[str, float]] = {
    "mistralai/Mistral-7B-Instruct-v0.2": {"parameters": 7.24e9, "checkpoint_gb": 14.5},
    "mistralai/Mixtral-8x7B-Instruct-v0.1": {"parameters": 46.7e9, "checkpoint_gb": 93.4},
    "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ": {"checkpoint_gb": 24.65},
    "TheBloke/Mistral-7B-Instruct-v0.2-AWQ": {"checkpoint_gb": 4.15},
    "RedHatAI/Mixtral-8x7B-Instruct-v0.1-FP8": {"checkpoint_gb": 47.0},
}


def catalogue_entry(model: str) -> Optional[Dict[str, Any]]:
    """The catalogue entry of a model id (aliases followed, case-insensitive as the hub is), or None."""
    name = MODEL_ALIASES.get(model, model)
    if name in MODEL_CATALOGUE:
        return MODEL_CATALOGUE[name]
    lowered = name.lower()
    for key, entry in MODEL_CATALOGUE.items():
        if key.lower() == lowered:
            return entry
    return None


def quantized_variants(model: str) -> Dict[str, Dict[str, Any]]:
    """Catalogue builds of the same base architecture and chat kind as `model` (e.g. its AWQ or FP8 builds)."""
    entry = catalogue_entry(model)
    if entry is None:
        return {}
    arch = entry["config"]["architectures"]
    return {
        name: other
        for name, other in MODEL_CATALOGUE.items()
        if other is not entry
        and other["config"]["architectures"] == arch
        and other["chat_template"] == entry["chat_template"]
        and other["config"].get("vocab_size") == entry["config"].get("vocab_size")
        and "quantization_config" in other["config"]
    }

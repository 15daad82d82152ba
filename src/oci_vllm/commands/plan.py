"""`oci-vllm plan`: the collection's sizing planner (plugins/plugin_utils/_vllm_plan.py, loaded by ../plan.py) from
the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import BadInput, ExitCode
from ..output import emit
from ..plan import load_planner
from ..validation import validate_shape
from . import Context


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register `plan` on the CLI's subparsers."""
    p = sub.add_parser("plan", parents=parents, help="does a model fit a GPU shape under vLLM (sizing planner)")
    p.add_argument("--shape", required=True, help="OCI shape, e.g. VM.GPU.A10.1, BM.GPU.H100.8")
    p.add_argument("--model", required=True, help="model id, e.g. mistralai/Mistral-7B-Instruct-v0.2")
    p.add_argument("--max-model-len", type=int, default=0, help="context length (default 0: the model's own limit)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per model (default 1)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="default 0.9")
    p.add_argument("--quantization", default="", help="'', awq, awq_marlin, fp8 (default: from the checkpoint)")
    p.add_argument("--dtype", default="auto", help="auto, bfloat16, float16, float32")
    p.add_argument("--kv-cache-dtype", default="auto", help="auto, fp8, fp8_e4m3, fp8_e5m2")
    p.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (no graph memory)")
    p.add_argument("--config", help="the model's config.json (for a model the planner's catalogue lacks)")


def _read_config(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        data = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"--config {path!r}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"--config {path!r}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise BadInput(f"--config {path!r}: a config.json object is needed, got {type(data).__name__}")
    return data


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    planner, shapes = load_planner(ctx.project)
    validate_shape(args.shape, shapes.GPU_SHAPES)
    result = planner.plan(
        args.model,
        shape=args.shape,
        tensor_parallel_size=args.tensor_parallel_size,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        quantization=args.quantization,
        dtype=args.dtype,
        kv_cache_dtype=args.kv_cache_dtype,
        enforce_eager=args.enforce_eager,
        model_config=_read_config(args.config),
    )
    emit(result, args.json, render(result))
    if result["fits"] is None:
        print(f"oci-vllm: error: cannot size {args.model!r}: give its config.json with --config", file=sys.stderr)
    return int(ExitCode.OK if result["fits"] else ExitCode.BAD_INPUT)


def render(result: dict[str, Any]) -> str:
    """The plan as a readable table."""
    verdict = {True: "FITS", False: "DOES NOT FIT", None: "NOT SIZED"}[result["fits"]]
    lines = [f"{result['model']} on {result['shape']}: {verdict}"]
    rows = [("tensor_parallel_size", result["tensor_parallel_size"])]
    if result["max_model_len"]:
        largest = result.get("max_model_len_fit")
        rows.append(
            (
                "max_model_len",
                f"{result['max_model_len']}" + (f" (largest that fits: {largest})" if largest is not None else ""),
            )
        )
    if result["weights_gib_per_gpu"] is not None:
        rows.append(
            ("weights", f"{result['weights_gib_per_gpu']} GiB per GPU, {result['weights_gib_total']} GiB in all")
        )
        kv = result["kv_bytes_per_token"]
        rows.append(("KV cache bytes/token", f"{kv['per_gpu']} per GPU, {kv['total']} over the TP group"))
    if result["kv_tokens"] is not None:
        rows.append(("KV cache", f"{result['kv_cache_gib_per_gpu']} GiB per GPU = {result['kv_tokens']} tokens"))
        rows.append(("max concurrency", f"{result['max_concurrency']}x at max_model_len {result['max_model_len']}"))
        budget = ", ".join(f"{k} {v}" for k, v in result["memory_gib_per_gpu"].items())
        rows.append(("GiB per GPU", budget))
    width = max(len(name) for name, _value in rows)
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    for title in ("problems", "notes"):
        if result[title]:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in result[title]]
    return "\n".join(lines)

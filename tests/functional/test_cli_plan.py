"""`oci-vllm plan`: the sizing planner from the command line (no docker, no ansible run): exit 0 when the model fits,
4 when it does not or on bad input, the table and the JSON carry the planner's own figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oci_vllm import cli
from oci_vllm.errors import ExitCode

OCI_VLLM = str(Path(sys.executable).parent / "oci-vllm")
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.2"


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_fitting_plan_exits_0_and_prints_the_table(capsys):
    code, out, _err = _plan(capsys, "--shape", "VM.GPU.A10.1", "--model", MISTRAL, "--max-model-len", "16384")
    assert code == ExitCode.OK
    assert out.startswith(f"{MISTRAL} on VM.GPU.A10.1: FITS")
    assert "KV cache bytes/token  131072 per GPU" in out and "max concurrency" in out and "problems:" not in out


def test_misfit_exits_4_with_the_planners_reason(capsys):
    code, out, _err = _plan(capsys, "--shape", "VM.GPU.A10.1", "--model", MISTRAL, "--max-model-len", "32768")
    assert code == ExitCode.BAD_INPUT
    assert "DOES NOT FIT" in out and "vllm_server_max_model_len=32768 needs 4.0 GiB of KV cache" in out
    assert "VM.GPU.A10.2 with vllm_server_tensor_parallel_size=2" in out


def test_json_is_the_planners_dict(capsys):
    args = ["--shape", "VM.GPU.A10.2", "--model", MISTRAL, "--tensor-parallel-size", "2", "--json"]
    code, out, _err = _plan(capsys, *args)
    data = json.loads(out)
    assert code == ExitCode.OK and data["fits"] is True and data["tensor_parallel_size"] == 2
    assert data["max_model_len"] == 32768 and data["kv_bytes_per_token"] == {"per_gpu": 65536, "total": 131072}


def test_unknown_shape_lists_the_known_ones(capsys):
    code, _out, err = _plan(capsys, "--shape", "VM.GPU.A11.1", "--model", MISTRAL)
    assert code == ExitCode.BAD_INPUT
    assert (
        "--shape 'VM.GPU.A11.1' is not a known OCI GPU shape" in err
        and "VM.GPU.A10.1" in err
        and "BM.GPU.H200.8" in err
    )


def test_unknown_model_needs_its_config(capsys, tmp_path):
    code, out, err = _plan(capsys, "--shape", "VM.GPU.A10.1", "--model", "me/my-model")
    assert code == ExitCode.BAD_INPUT and "NOT SIZED" in out and "--config" in err
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "architectures": ["MistralForCausalLM"],
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "intermediate_size": 14336,
                "vocab_size": 32000,
                "max_position_embeddings": 32768,
                "torch_dtype": "bfloat16",
            }
        )
    )
    args = ["--shape", "VM.GPU.A10.1", "--model", "me/my-model", "--config", str(config), "--max-model-len", "8192"]
    code, out, _err = _plan(capsys, *args)
    assert code == ExitCode.OK and "FITS" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "/nonexistent/config.json"], "cannot read it"),
        (["--tensor-parallel-size", "two"], "invalid int value"),
        (["--tensor-parallel-size", "3"], "does not divide num_attention_heads=32"),
    ],
)
def test_bad_input_exits_4(capsys, args, message):
    code, out, err = _plan(capsys, "--shape", "VM.GPU.A10.2", "--model", MISTRAL, *args)
    assert code == ExitCode.BAD_INPUT and message in out + err


def test_console_script_runs_outside_the_checkout(tmp_path):
    """The installed command finds the checkout's planner from any directory."""
    run = subprocess.run(
        [OCI_VLLM, "plan", "--shape", "BM.GPU.A10.4", "--model", "mistralai/Mixtral-8x7B-Instruct-v0.1",
         "--tensor-parallel-size", "4", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == ExitCode.BAD_INPUT, run.stderr
    assert "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ" in json.loads(run.stdout)["problems"][0]

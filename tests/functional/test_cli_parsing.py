"""oci-vllm argument parsing and input validation: bad input exits 4 before anything runs."""

from __future__ import annotations

import json
import os

import pytest

from oci_vllm import api, cli, runner, validation
from oci_vllm.commands.endpoint import fill_seed_defaults
from oci_vllm.errors import BadInput, ExitCode


@pytest.fixture
def no_runs(monkeypatch):
    """Any attempt to run ansible fails the test: validation must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("ansible-runner was called although the input is bad")

    monkeypatch.setattr(cli, "run_playbook", refuse)
    monkeypatch.setattr(cli, "list_inventory", refuse)
    monkeypatch.setattr(runner.ansible_runner, "run", refuse)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["deploy", "--bogus"],
        ["deploy", "-i", "/no/such/inventory"],
        ["deploy", "-l", "a10 h100"],
        ["deploy", "-e", "novalue"],
        ["deploy", "-e", "1bad=x"],
        ["deploy", "-e", "@/no/such/vars.yml"],
        ["deploy", "-e", "{not json"],
        ["deploy", "-e", "vllm_server_hf_token=hf_abc"],
        ["deploy", "-e", '{"vllm_server_api_key": "k"}'],
        ["deploy", "--hf-token-file", "/no/such/token"],
        ["status", "-i", "/no/such/inventory"],
        ["models", "--url", "ftp://example.com"],
        ["models", "--url", "http://127.0.0.1:1", "--host", "h1"],
        ["models", "--url", "http://127.0.0.1:1", "--timeout", "0"],
        ["complete", "--url", "http://127.0.0.1:1", "--max-tokens", "0"],
        ["complete", "--max-tokens", "many"],
        ["chat", "--url", "http://127.0.0.1:1", "--api-key-file", "/no/such/key"],
    ],
)
def test_bad_input_exits_4_without_running(argv, no_runs, capsys):
    assert cli.main(argv) == ExitCode.BAD_INPUT == 4
    assert "error" in capsys.readouterr().err


def test_bad_input_error_names_the_value(no_runs, capsys):
    assert cli.main(["deploy", "-l", "a10 h100"]) == 4
    err = capsys.readouterr().err
    assert "'a10 h100'" in err and "without spaces" in err


def test_secret_extra_var_is_refused_with_the_alternative(no_runs, capsys):
    assert cli.main(["deploy", "-e", "vllm_server_hf_token=hf_abc"]) == 4
    err = capsys.readouterr().err
    assert "OCI_VLLM_HF_TOKEN" in err and "hf_abc" not in err


def test_bad_input_json_error_on_stdout(no_runs, capsys):
    assert cli.main(["deploy", "--json", "-i", "/no/such/inventory"]) == 4
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 4 and "/no/such/inventory" in out["error"]


def test_empty_secret_file_is_bad_input(tmp_path, no_runs, capsys):
    token = tmp_path / "token"
    token.write_text("\n")
    assert cli.main(["deploy", "--hf-token-file", str(token)]) == 4
    assert "is empty" in capsys.readouterr().err


def test_valid_extra_vars_pass_through(tmp_path):
    vars_file = tmp_path / "v.yml"
    vars_file.write_text("a: 1\n")
    items = ["vllm_server_port=8001 vllm_server_dtype=bfloat16", '{"oci_vllm_serial": [1, 2]}', f"@{vars_file}"]
    assert validation.validate_extra_vars(items) == [*items[:2], f"@{vars_file.resolve()}"]


def test_inventory_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "inv").mkdir()
    monkeypatch.chdir(tmp_path)
    assert validation.validate_inventory("inv") == str((tmp_path / "inv").resolve())
    assert validation.validate_inventory("h1,h2") == "h1,h2"
    with pytest.raises(BadInput):
        validation.validate_inventory("missing")


def test_deploy_arguments_are_parsed():
    args = cli.build_parser().parse_args(
        ["deploy", "-l", "a10", "-i", "inv", "-e", "a=1", "-e", "@f", "--check", "--json", "-vv", "--keep-artifacts"]
    )
    assert (args.command, args.limit, args.inventory, args.extra_vars) == ("deploy", "a10", "inv", ["a=1", "@f"])
    assert args.check and args.json and args.verbose == 2 and args.keep_artifacts


def test_the_collections_seed_requests_are_the_tutorials():
    # The seed's curl examples (../shared/reference/tutorial-vllm-mistral-on-oci.md), bodies without the model.
    assert api.seed().requests == {
        "models": {"method": "GET", "path": "/v1/models"},
        "completions": {
            "method": "POST",
            "path": "/v1/completions",
            "body": {"prompt": "A GPU is a", "max_tokens": 128, "temperature": 0.7},
        },
        "chat": {
            "method": "POST",
            "path": "/v1/chat/completions",
            "body": {
                "messages": [
                    {"role": "user", "content": "Which GPU models are available on Oracle Cloud Infrastructure?"}
                ]
            },
        },
    }


def test_seed_calls_are_the_defaults():
    parser, seed = cli.build_parser(), api.seed()
    complete = fill_seed_defaults(parser.parse_args(["complete"]))
    chat = fill_seed_defaults(parser.parse_args(["chat"]))
    assert (complete.prompt, complete.max_tokens, complete.temperature) == (seed.prompt, 128, 0.7)
    assert (chat.message, chat.max_tokens) == (seed.chat_message, 128)
    given = fill_seed_defaults(parser.parse_args(["complete", "Hi", "--max-tokens", "3", "--temperature", "0"]))
    assert (given.prompt, given.max_tokens, given.temperature) == ("Hi", 3, 0.0)
    assert seed.body("chat", "m", max_tokens=8) == {
        "model": "m",
        "messages": [{"role": "user", "content": seed.chat_message}],
        "max_tokens": 8,
    }


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for code in ("0 ", "2 ", "3 ", "4 "):
        assert f"\n  {code}" in out


def test_ansible_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    cli.ansible_on_path()
    assert os.environ["PATH"].split(os.pathsep)[0] == os.path.dirname(os.sys.executable)

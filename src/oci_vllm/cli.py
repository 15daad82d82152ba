"""Console script `oci-vllm`: the parser and `main`, which runs one command (commands/<name>.py) and turns errors into
exit codes. Input checks are in validation.py, printing in output.py, the work in runner.py (playbooks),
inventory.py, api.py (HTTP) and secrets.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ansible_runner.exceptions import AnsibleRunnerException

from . import __version__
from .commands import Context, deploy, endpoint, hosts, plan, provision, status
from .errors import EXIT_CODES_HELP, BadInput, ExitCode, OciVllmError
from .inventory import list_inventory
from .output import emit
from .project import find_project
from .runner import run_playbook

__all__ = ["COMMANDS", "Parser", "ansible_on_path", "build_parser", "main"]

DESCRIPTION = """Deploy and query vLLM endpoints on OCI GPU hosts with the oci_gpu.vllm collection.

Secrets are never taken on the command line: the Hugging Face token comes from OCI_VLLM_HF_TOKEN (or HF_TOKEN) or
--hf-token-file, the API key from OCI_VLLM_API_KEY or --api-key-file."""


class Parser(argparse.ArgumentParser):
    """argparse with exit code 4 (bad input) instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise BadInput(f"{message} (see {self.prog} --help)")


# ---------------------------------------------------------------- options shared by several commands


def _common() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("-v", "--verbose", action="count", default=0, help="ansible verbosity (-v ... -vvvv)")
    return p


def _inventory_opts() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("-i", "--inventory", help="inventory path (default: ansible.cfg's, inventory/oci)")
    return p


def _artifact_opts() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("--keep-artifacts", action="store_true", help="keep ansible-runner's private data dir (printed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress on stderr")
    return p


def _run_opts() -> Parser:
    p = Parser(add_help=False, parents=[_artifact_opts()])
    p.add_argument("-l", "--limit", help="host pattern, e.g. a10, shape_BM_GPU_A10_4, a host name")
    return p


def _endpoint_opts() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("--url", help="endpoint base URL, e.g. https://10.0.0.5:8000 (default: from the inventory host)")
    p.add_argument(
        "--ca-file",
        help="CA file that verifies the endpoint's certificate (default: the inventory host's, else the system's)",
    )
    p.add_argument("--host", help="inventory host whose endpoint to use (default: the only one)")
    p.add_argument(
        "--api-key-file", help="file holding the API key (default: OCI_VLLM_API_KEY, else the host's kept key)"
    )
    p.add_argument("--model", help="model id (default: the first one /v1/models lists)")
    p.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds (default 120)")
    return p


def build_parser() -> Parser:
    parser = Parser(
        prog="oci-vllm",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"oci-vllm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, inv, run = _common(), _inventory_opts(), _run_opts()
    deploy.add_parser(sub, [common, inv, run])
    hosts.add_parser(sub, [common, inv])
    status.add_parser(sub, [common, inv, run])
    endpoint.add_parsers(sub, [common, inv, _endpoint_opts()])
    plan.add_parser(sub, [common])
    provision.add_parser(sub, [common, inv, _artifact_opts()])
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Context], int]] = {
    "deploy": deploy.cmd_deploy,
    "hosts": hosts.cmd_hosts,
    "status": status.cmd_status,
    "models": endpoint.cmd_models,
    "complete": endpoint.cmd_complete,
    "chat": endpoint.cmd_chat,
    "plan": plan.cmd_plan,
    "provision": provision.cmd_provision,
}


def ansible_on_path() -> None:
    """ansible-playbook and ansible-inventory sit next to this interpreter (a venv run without activating it)."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(p for p in (bindir, path) if p)


def main(argv: list[str] | None = None) -> int:
    as_json = "--json" in (sys.argv[1:] if argv is None else argv)
    ansible_on_path()
    try:
        args = build_parser().parse_args(argv)
        # This module's run_playbook and list_inventory, looked up at call time: a caller may replace them.
        ctx = Context(find_project(), run_playbook=run_playbook, list_inventory=list_inventory)
        return COMMANDS[args.command](args, ctx)
    except AnsibleRunnerException as exc:
        print(f"oci-vllm: error: ansible-runner: {exc}", file=sys.stderr)
        return int(ExitCode.ERROR)
    except OciVllmError as exc:
        if as_json:
            emit({"error": str(exc), "exit_code": int(exc.exit_code)}, True, "")
        print(f"oci-vllm: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("oci-vllm: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)

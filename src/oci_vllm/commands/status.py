"""`oci-vllm status`: per host, the container's state, the served model and readiness, from playbooks/status.yml's
custom stats (`oci_vllm_status`). `run_status` also gives the endpoint commands their host's endpoint."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadInput, ExitCode
from ..output import emit, failure_line, progress, table
from ..runner import RunResult
from ..secrets import Secrets, load_secrets
from ..validation import validate_inventory, validate_limit
from . import Context, no_hosts

COLUMNS = [
    ("host", "HOST"),
    ("container_state", "CONTAINER"),
    ("served_model", "MODEL"),
    ("ready", "READY"),
    ("endpoint", "ENDPOINT"),
    ("detail", "DETAIL"),
]


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", parents=parents, help="per host: container state, model, readiness")
    status.add_argument("--api-key-file", help="file with the API key (default: OCI_VLLM_API_KEY, else the kept key)")


def run_status(args: argparse.Namespace, ctx: Context, limit: str | None, deep: bool) -> RunResult:
    # A key given to the CLI is the one the server was deployed with; else the play reads the host's kept key file.
    api_key = load_secrets(None, getattr(args, "api_key_file", None)).api_key
    return ctx.run_playbook(
        ctx.project,
        ctx.project.status_playbook,
        inventory=validate_inventory(args.inventory),
        limit=validate_limit(limit),
        extra_vars=[f"oci_vllm_status_deep={'true' if deep else 'false'}"],
        secrets=Secrets(api_key=api_key),
        verbosity=args.verbose,
        event_handler=progress(args) if args.verbose else None,
        keep_artifacts=getattr(args, "keep_artifacts", False),
    )


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    result = run_status(args, ctx, args.limit, deep=True)
    if no_hosts(result):
        raise BadInput(
            f"no host matched (inventory {args.inventory or 'from ansible.cfg'}, limit {args.limit or 'none'})"
        )
    rows = []
    for host in result.hosts():
        info = result.reported.get(host) or {}
        state = result.host_state(host)
        # Every row has the same keys: a host that failed or was unreachable did not report, and is not ready.
        row = {"container_state": "unknown", "served_model": "", "ready": False, "endpoint": "", "detail": state}
        rows.append({"host": host, "state": state, **row, **info})
    code = result.exit_code
    if code == ExitCode.OK and any(not r.get("ready") for r in rows):
        code = ExitCode.HOSTS_FAILED  # reachable but not serving
    human = table(rows, COLUMNS)
    for failure in result.failures:
        human += "\n" + failure_line(failure)
    emit({"command": "status", "exit_code": int(code), "hosts": rows, "failures": result.failures}, args.json, human)
    return int(code)

"""`oci-vllm deploy`: site.yml (driver, toolkit, vLLM, health gate) with the secrets handed over in a vars file."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadInput
from ..output import emit, failure_line, progress, run_summary
from ..secrets import load_secrets
from ..validation import validate_extra_vars, validate_inventory, validate_limit
from . import Context, no_hosts


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    deploy = sub.add_parser("deploy", parents=parents, help="run site.yml (driver, toolkit, vLLM, health gate)")
    deploy.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="KEY=VALUE|@FILE",
        help="extra variables (repeatable)",
    )
    deploy.add_argument("--check", action="store_true", help="check mode: report what would change, change nothing")
    deploy.add_argument("--hf-token-file", help="file holding the Hugging Face token (default: OCI_VLLM_HF_TOKEN)")
    deploy.add_argument(
        "--api-key-file", help="file holding the API key to set (default: OCI_VLLM_API_KEY, else generated)"
    )


def cmd_deploy(args: argparse.Namespace, ctx: Context) -> int:
    inventory = validate_inventory(args.inventory)
    limit = validate_limit(args.limit)
    extra = validate_extra_vars(args.extra_vars)
    secrets = load_secrets(args.hf_token_file, args.api_key_file)
    result = ctx.run_playbook(
        ctx.project,
        ctx.project.site_playbook,
        inventory=inventory,
        limit=limit,
        extra_vars=extra,
        secrets=secrets,
        check=args.check,
        verbosity=args.verbose,
        event_handler=progress(args),
        keep_artifacts=args.keep_artifacts,
    )
    summary = run_summary("deploy", result)
    summary["check"] = args.check
    summary["endpoints"] = result.reported  # host -> the role's status: endpoint, ca_file, models, ready, ...
    if no_hosts(result):
        raise BadInput(f"no host matched (inventory {inventory or 'from ansible.cfg'}, limit {limit or 'none'})")
    human = [f"deploy{' (check mode)' if args.check else ''}: {result.status}"]
    for host, info in summary["hosts"].items():
        human.append(f"  {host}: {info['state']} (ok={info['ok']} changed={info['changed']} failed={info['failed']})")
        if host in result.reported:
            info = result.reported[host]
            ca = info.get("ca_file") or "public"
            human.append(f"    {info.get('endpoint', '')} serves {info.get('models', [])} (CA: {ca})")
    if result.invalid:
        summary["invalid"] = result.invalid
        human.append("  BAD INPUT (validated on every host first; no host was changed):")
        human += [f"    {host}: {message}" for host, messages in sorted(result.invalid.items()) for message in messages]
    else:
        human += ["  " + failure_line(failure) for failure in result.failures]
    if result.private_data_dir:
        human.append(f"  artifacts kept in {result.private_data_dir}")
    emit(summary, args.json, "\n".join(human))
    return int(result.exit_code)

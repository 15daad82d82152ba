"""Console script `oci-vllm`: argument parsing, input validation and output. The work is in runner.py (playbooks),
inventory.py, api.py (HTTP) and secrets.py."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ansible_runner.exceptions import AnsibleRunnerException

from . import __version__, api
from .errors import EXIT_CODES_HELP, BadInput, ExitCode, OciVllmError
from .inventory import host_rows, list_inventory
from .plan import add_plan_parser, cmd_plan
from .progress import Progress
from .project import Project, find_project
from .provision import add_provision_parser, cmd_provision
from .runner import RunResult, run_playbook
from .secrets import Secrets, load_secrets, read_secret_file

SEED_PROMPT = "A GPU is a"
SEED_CHAT = "Which GPU models are available on Oracle Cloud Infrastructure?"
SECRET_VARS = ("vllm_server_hf_token", "vllm_server_api_key")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LIMIT = re.compile(r"^[^\s]+$")

DESCRIPTION = """Deploy and query vLLM endpoints on OCI GPU hosts with the oci_gpu.vllm collection.

Secrets are never taken on the command line: the Hugging Face token comes from OCI_VLLM_HF_TOKEN (or HF_TOKEN) or
--hf-token-file, the API key from OCI_VLLM_API_KEY or --api-key-file."""


class Parser(argparse.ArgumentParser):
    """argparse with exit code 4 (bad input) instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise BadInput(f"{message} (see {self.prog} --help)")


def _common() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("-v", "--verbose", action="count", default=0, help="ansible verbosity (-v ... -vvvv)")
    return p


def _inventory_opts() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("-i", "--inventory", help="inventory path (default: ansible.cfg's, inventory/oci)")
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
    common, inv, run, endpoint = _common(), _inventory_opts(), _run_opts(), _endpoint_opts()

    deploy = sub.add_parser(
        "deploy", parents=[common, inv, run], help="run site.yml (driver, toolkit, vLLM, health gate)"
    )
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

    sub.add_parser("hosts", parents=[common, inv], help="the inventory's vLLM hosts: shape, GPU family, IP")
    status = sub.add_parser("status", parents=[common, inv, run], help="per host: container state, model, readiness")
    status.add_argument("--api-key-file", help="file with the API key (default: OCI_VLLM_API_KEY, else the kept key)")
    sub.add_parser("models", parents=[common, inv, endpoint], help="GET /v1/models")
    complete = sub.add_parser("complete", parents=[common, inv, endpoint], help="POST /v1/completions")
    complete.add_argument("prompt", nargs="?", default=SEED_PROMPT, help=f"default: {SEED_PROMPT!r}")
    complete.add_argument("--max-tokens", type=int, default=128)
    complete.add_argument("--temperature", type=float, default=0.7)
    chat = sub.add_parser("chat", parents=[common, inv, endpoint], help="POST /v1/chat/completions")
    chat.add_argument("message", nargs="?", default=SEED_CHAT, help=f"default: {SEED_CHAT!r}")
    chat.add_argument("--max-tokens", type=int, default=128)
    add_plan_parser(sub, [common])
    add_provision_parser(sub, [common, inv, _artifact_opts()])
    return parser


def _artifact_opts() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("--keep-artifacts", action="store_true", help="keep ansible-runner's private data dir (printed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress on stderr")
    return p


# ---------------------------------------------------------------- validation (before anything runs)


def validate_inventory(value: str | None) -> str | None:
    if value is None:
        return None
    if "," in value:  # an inline host list, as ansible-playbook -i accepts
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise BadInput(f"-i {value!r}: no such inventory file or directory")
    return str(path.resolve())


def validate_limit(value: str | None) -> str | None:
    if value is None:
        return None
    if not _LIMIT.match(value):
        raise BadInput(f"-l {value!r} is not allowed: give a host pattern without spaces (e.g. a10 or 'a10:&region_x')")
    return value


def _secret_in_mapping(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in data:
            if key in SECRET_VARS:
                return str(key)
    return None


def validate_extra_vars(items: list[str]) -> list[str]:
    out = []
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            if not path.is_file() or not os.access(path, os.R_OK):
                raise BadInput(f"-e {item!r}: {path} is not a readable file")
            out.append("@" + str(path.resolve()))
            continue
        if item.lstrip().startswith("{"):
            try:
                data = json.loads(item)
            except json.JSONDecodeError as exc:
                raise BadInput(f"-e {item[:40]!r}...: not valid JSON ({exc.msg})") from None
            secret = _secret_in_mapping(data)
        else:
            if "=" not in item:
                raise BadInput(f"-e {item!r} is not allowed: use KEY=VALUE, a JSON object, or @FILE")
            pairs = dict(part.split("=", 1) for part in _split_kv(item))
            bad = [k for k in pairs if not _VAR_NAME.match(k)]
            if bad:
                raise BadInput(f"-e {item!r}: {bad[0]!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            secret = _secret_in_mapping(pairs)
        if secret:
            raise BadInput(
                f"-e {secret}=... is not allowed: secrets on the command line end up in process lists and logs; "
                "use OCI_VLLM_HF_TOKEN / --hf-token-file or OCI_VLLM_API_KEY / --api-key-file"
            )
        out.append(item)
    return out


def _split_kv(item: str) -> list[str]:
    try:
        parts = shlex.split(item)
    except ValueError as exc:
        raise BadInput(f"-e {item!r}: {exc}") from None
    for part in parts:
        if "=" not in part:
            raise BadInput(f"-e {item!r}: {part!r} is not KEY=VALUE")
    return parts


def validate_positive(name: str, value: float) -> None:
    if value <= 0:
        raise BadInput(f"{name}={value} is not allowed: give a number greater than 0")


# ---------------------------------------------------------------- output


def emit(data: Any, as_json: bool, human: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write((json.dumps(data, indent=2, default=str) if as_json else human) + "\n")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    if not rows:
        return "(no hosts)"
    keys = [key for key, _header in columns]
    cells = [[header for _key, header in columns]] + [
        [str(r.get(k) if r.get(k) not in (None, "") else "-") for k in keys] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def run_summary(command: str, result: RunResult) -> dict[str, Any]:
    stats = result.stats or {}
    hosts = {
        host: {
            "state": result.host_state(host),
            **{
                name: (stats.get(key) or {}).get(host, 0)
                for name, key in (("ok", "ok"), ("changed", "changed"), ("failed", "failures"), ("skipped", "skipped"))
            },
        }
        for host in result.hosts()
    }
    out: dict[str, Any] = {
        "command": command,
        "exit_code": int(result.exit_code),
        "runner_status": result.status,
        "rc": result.rc,
        "hosts": hosts,
        "failures": result.failures,
    }
    if result.private_data_dir:
        out["private_data_dir"] = result.private_data_dir
    return out


# ---------------------------------------------------------------- commands


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(show_skipped=args.verbose > 0, enabled=not getattr(args, "quiet", False))


def _no_hosts(result: RunResult) -> bool:
    return result.exit_code == ExitCode.OK and not result.hosts()


def cmd_deploy(args: argparse.Namespace, project: Project) -> int:
    inventory = validate_inventory(args.inventory)
    limit = validate_limit(args.limit)
    extra = validate_extra_vars(args.extra_vars)
    secrets = load_secrets(args.hf_token_file, args.api_key_file)
    result = run_playbook(
        project,
        project.site_playbook,
        inventory=inventory,
        limit=limit,
        extra_vars=extra,
        secrets=secrets,
        check=args.check,
        verbosity=args.verbose,
        event_handler=_progress(args),
        keep_artifacts=args.keep_artifacts,
    )
    summary = run_summary("deploy", result)
    summary["check"] = args.check
    summary["endpoints"] = result.reported  # host -> the role's status: endpoint, ca_file, models, ready, ...
    if _no_hosts(result):
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
        for failure in result.failures:
            human.append(f"  {failure['kind'].upper()} {failure['host']} / {failure['task']}: {failure['msg']}")
    if result.private_data_dir:
        human.append(f"  artifacts kept in {result.private_data_dir}")
    emit(summary, args.json, "\n".join(human))
    return int(result.exit_code)


def cmd_hosts(args: argparse.Namespace, project: Project) -> int:
    rows = host_rows(list_inventory(project, validate_inventory(args.inventory)))
    columns = [("host", "HOST"), ("shape", "SHAPE"), ("gpu_family", "GPU"), ("gpu_count", "GPUS"), ("ip", "IP")]
    emit({"hosts": rows}, args.json, table(rows, columns))
    return int(ExitCode.OK)


def run_status(args: argparse.Namespace, project: Project, limit: str | None, deep: bool) -> RunResult:
    # A key given to the CLI is the one the server was deployed with; else the play reads the host's kept key file.
    api_key = load_secrets(None, getattr(args, "api_key_file", None)).api_key
    return run_playbook(
        project,
        project.status_playbook,
        inventory=validate_inventory(args.inventory),
        limit=validate_limit(limit),
        extra_vars=[f"oci_vllm_status_deep={'true' if deep else 'false'}"],
        secrets=Secrets(api_key=api_key),
        verbosity=args.verbose,
        event_handler=_progress(args) if args.verbose else None,
        keep_artifacts=getattr(args, "keep_artifacts", False),
    )


def cmd_status(args: argparse.Namespace, project: Project) -> int:
    result = run_status(args, project, args.limit, deep=True)
    if _no_hosts(result):
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
    columns = [
        ("host", "HOST"),
        ("container_state", "CONTAINER"),
        ("served_model", "MODEL"),
        ("ready", "READY"),
        ("endpoint", "ENDPOINT"),
        ("detail", "DETAIL"),
    ]
    human = table(rows, columns)
    for failure in result.failures:
        human += f"\n{failure['kind'].upper()} {failure['host']} / {failure['task']}: {failure['msg']}"
    emit({"command": "status", "exit_code": int(code), "hosts": rows, "failures": result.failures}, args.json, human)
    return int(code)


def resolve_client(args: argparse.Namespace, project: Project) -> tuple[api.Client, str]:
    """--url, else the endpoint of --host (or the only host) from the status play. Key: file, env, host's kept key."""
    validate_positive("--timeout", args.timeout)
    if args.url and args.host:
        raise BadInput("--url and --host are exclusive: give one")
    key = load_secrets(None, args.api_key_file).api_key
    if args.url:
        return api.Client(args.url, key, args.timeout, ca_file=args.ca_file or ""), ""
    result = run_status(args, project, args.host, deep=False)
    if result.exit_code != ExitCode.OK:
        detail = "; ".join(f"{f['host']}: {f['msg']}" for f in result.failures) or result.status
        raise OciVllmError(f"cannot look up the endpoint in the inventory: {detail}", result.exit_code)
    hosts = sorted(result.reported)
    if not hosts:
        raise BadInput(f"no host matched (inventory {args.inventory or 'from ansible.cfg'}, host {args.host or 'any'})")
    if len(hosts) > 1:
        raise BadInput(f"{len(hosts)} hosts match ({', '.join(hosts[:10])}): choose one with --host or give --url")
    info = result.reported[hosts[0]]
    if not key and info.get("api_key_file") and Path(info["api_key_file"]).is_file():
        key = read_secret_file(info["api_key_file"], "API key")
    return api.Client(info["endpoint"], key, args.timeout, ca_file=args.ca_file or info.get("ca_file") or ""), hosts[0]


def _model(args: argparse.Namespace, client: api.Client) -> str:
    if args.model:
        return str(args.model)
    models = client.models()
    if not models:
        raise OciVllmError(f"{client.base_url}/v1/models lists no model", ExitCode.HOSTS_FAILED)
    return models[0]


def cmd_models(args: argparse.Namespace, project: Project) -> int:
    client, where = resolve_client(args, project)
    models = client.models()
    emit({"endpoint": client.base_url, "host": where, "models": models}, args.json, "\n".join(models) or "(no models)")
    return int(ExitCode.OK)


def cmd_complete(args: argparse.Namespace, project: Project) -> int:
    validate_positive("--max-tokens", args.max_tokens)
    client, where = resolve_client(args, project)
    model = _model(args, client)
    answer = client.complete(model, args.prompt, max_tokens=args.max_tokens, temperature=args.temperature)
    text = api.completion_text(answer)
    emit(
        {
            "endpoint": client.base_url,
            "host": where,
            "model": model,
            "prompt": args.prompt,
            "text": text,
            "response": answer,
        },
        args.json,
        f"{args.prompt}{text}",
    )
    return int(ExitCode.OK)


def cmd_chat(args: argparse.Namespace, project: Project) -> int:
    validate_positive("--max-tokens", args.max_tokens)
    client, where = resolve_client(args, project)
    model = _model(args, client)
    answer = client.chat(model, args.message, max_tokens=args.max_tokens)
    text = api.chat_text(answer)
    emit(
        {
            "endpoint": client.base_url,
            "host": where,
            "model": model,
            "message": args.message,
            "text": text,
            "response": answer,
        },
        args.json,
        text,
    )
    return int(ExitCode.OK)


def ansible_on_path() -> None:
    """ansible-playbook and ansible-inventory sit next to this interpreter (a venv run without activating it)."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(p for p in (bindir, path) if p)


COMMANDS = {
    "deploy": cmd_deploy,
    "hosts": cmd_hosts,
    "status": cmd_status,
    "models": cmd_models,
    "complete": cmd_complete,
    "chat": cmd_chat,
    "plan": cmd_plan,
    "provision": lambda args, project: cmd_provision(args, project, validate_inventory(args.inventory)),
}


def main(argv: list[str] | None = None) -> int:
    as_json = "--json" in (sys.argv[1:] if argv is None else argv)
    ansible_on_path()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, find_project())
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

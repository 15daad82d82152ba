"""`oci-vllm models / complete / chat`: the seed's three API calls (api.py) against a host's endpoint, found with
--url or through the status play (--host, or the only host)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import api
from ..errors import BadInput, ExitCode, OciVllmError
from ..output import emit
from ..project import Project
from ..secrets import load_secrets, read_secret_file
from ..validation import validate_positive
from . import Context
from .status import run_status


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    # Defaults come from the seed's requests (roles/vllm_server/files/seed_requests.json) when a command runs, so that
    # building the parser (e.g. for --help) reads no file.
    sub.add_parser("models", parents=parents, help="GET /v1/models")
    complete = sub.add_parser("complete", parents=parents, help="POST /v1/completions")
    complete.add_argument("prompt", nargs="?", help="default: the seed's prompt")
    complete.add_argument("--max-tokens", type=int, help="default: the seed's")
    complete.add_argument("--temperature", type=float, help="default: the seed's")
    chat = sub.add_parser("chat", parents=parents, help="POST /v1/chat/completions")
    chat.add_argument("message", nargs="?", help="default: the seed's question")
    chat.add_argument("--max-tokens", type=int, default=api.DEFAULT_CHAT["max_tokens"])


def resolve_client(args: argparse.Namespace, ctx: Context) -> tuple[api.Client, str]:
    """--url, else the endpoint of --host (or the only host) from the status play. Key: file, env, host's kept key."""
    validate_positive("--timeout", args.timeout)
    if args.url and args.host:
        raise BadInput("--url and --host are exclusive: give one")
    key = load_secrets(None, args.api_key_file).api_key
    if args.url:
        return api.Client(args.url, key, args.timeout, ca_file=args.ca_file or ""), ""
    result = run_status(args, ctx, args.host, deep=False)
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


def fill_seed_defaults(args: argparse.Namespace, project: Project | None = None) -> argparse.Namespace:
    """What `complete` / `chat` were not given, from the seed's requests in `project`'s collection (prompt or
    question, completion options); the file is read only when something is missing."""
    names = [n for n in ("prompt", "message", "max_tokens", "temperature") if getattr(args, n, "absent") is None]
    if names:
        seed = api.seed(project)
        defaults = {"prompt": seed.prompt, "message": seed.chat_message, **seed.completion_options}
        for name in names:
            setattr(args, name, defaults[name])
    return args


def cmd_models(args: argparse.Namespace, ctx: Context) -> int:
    client, where = resolve_client(args, ctx)
    models = client.models()
    emit({"endpoint": client.base_url, "host": where, "models": models}, args.json, "\n".join(models) or "(no models)")
    return int(ExitCode.OK)


def cmd_complete(args: argparse.Namespace, ctx: Context) -> int:
    fill_seed_defaults(args, ctx.project)
    validate_positive("--max-tokens", args.max_tokens)
    client, where = resolve_client(args, ctx)
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


def cmd_chat(args: argparse.Namespace, ctx: Context) -> int:
    fill_seed_defaults(args, ctx.project)
    validate_positive("--max-tokens", args.max_tokens)
    client, where = resolve_client(args, ctx)
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

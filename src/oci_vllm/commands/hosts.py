"""`oci-vllm hosts`: the inventory's vLLM hosts (shape, GPU family, IP) from `ansible-inventory --list`."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ExitCode
from ..inventory import host_rows
from ..output import emit, table
from ..validation import validate_inventory
from . import Context

COLUMNS = [("host", "HOST"), ("shape", "SHAPE"), ("gpu_family", "GPU"), ("gpu_count", "GPUS"), ("ip", "IP")]


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    sub.add_parser("hosts", parents=parents, help="the inventory's vLLM hosts: shape, GPU family, IP")


def cmd_hosts(args: argparse.Namespace, ctx: Context) -> int:
    rows = host_rows(ctx.list_inventory(ctx.project, validate_inventory(args.inventory)))
    emit({"hosts": rows}, args.json, table(rows, COLUMNS))
    return int(ExitCode.OK)

"""The `oci-vllm` commands, one module each; cli.py parses the command line and calls `cmd_<name>(args, ctx)`.

A command validates its input first (BadInput, exit 4, before anything runs), does its work through `ctx`, prints
through output.py and returns the exit code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ExitCode
from ..project import Project
from ..runner import RunResult


@dataclass(frozen=True)
class Context:
    """The checkout, and the two ways into Ansible (runner.run_playbook, inventory.list_inventory): cli.main hands
    them in, so whoever calls a command (a test, an embedding program) chooses them."""

    project: Project
    run_playbook: Callable[..., RunResult]
    list_inventory: Callable[[Project, str | None], dict[str, Any]]


def no_hosts(result: RunResult) -> bool:
    """The run succeeded on no host at all: the limit or the inventory matched nothing."""
    return result.exit_code == ExitCode.OK and not result.hosts()

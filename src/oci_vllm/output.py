"""What the commands print: the result on stdout (a table or text, or JSON with --json), live progress on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from .progress import Progress
from .runner import RunResult


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


def failure_line(failure: dict[str, str]) -> str:
    return f"{failure['kind'].upper()} {failure['host']} / {failure['task']}: {failure['msg']}"


def progress(args: argparse.Namespace) -> Progress:
    """The live display for a run: skipped tasks shown from -v on, none with -q."""
    return Progress(show_skipped=args.verbose > 0, enabled=not getattr(args, "quiet", False))


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

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Reads the real hosts' answers kept in tests/golden/ ("### command", output, "### rc=N" blocks)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

GOLDEN = Path(__file__).resolve().parents[3] / "golden"


def blocks(name: str) -> Dict[str, Tuple[str, int]]:
    """{command: (output, exit status)} of one golden file."""
    found: Dict[str, Tuple[str, int]] = {}
    command, lines = None, []
    for line in (GOLDEN / name).read_text().splitlines():
        if line.startswith("### rc="):
            if command is not None:
                found[command] = ("\n".join(lines) + ("\n" if lines else ""), int(line[len("### rc=") :]))
            command, lines = None, []
        elif line.startswith("### "):
            command, lines = line[4:], []
        elif command is not None:
            lines.append(line)
    return found


def output(name: str, command_start: str) -> Tuple[str, int]:
    """The block whose command starts with command_start (exactly one must)."""
    matches = [v for k, v in blocks(name).items() if k.startswith(command_start)]
    assert len(matches) == 1, "%s: %d blocks start with %r" % (name, len(matches), command_start)
    return matches[0]

"""Console script `oci-vllm` (commands land with the wrapper issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("oci-vllm: no commands yet", file=sys.stderr)
    return 2

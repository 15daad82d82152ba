"""Run one role of this collection against the local machine through ansible-playbook, the way the role tests need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def ansible_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment every local Ansible run of the tests gets: this checkout's config and collections, only the
    inline host list as inventory (not the OCI inventory in ansible.cfg), no colour."""
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_INVENTORY_ENABLED="ansible.builtin.host_list",
        **extra,
    )


def run_role(
    tmp_path: Path,
    role: str,
    extra_vars: dict,
    *,
    options: tuple[str, ...] = ("--check",),
    gather_facts: bool = False,
    env: dict[str, str] | None = None,
    timeout: int = 120,
) -> subprocess.CompletedProcess:
    """Apply oci_gpu.vllm.<role> to localhost (local connection, the venv's Python); nothing else is in the play."""
    playbook = tmp_path / f"{role}.yml"
    playbook.write_text(
        f"- hosts: all\n  gather_facts: {str(gather_facts).lower()}\n  roles:\n    - oci_gpu.vllm.{role}\n"
    )
    run_env = ansible_env(tmp_path, **(env or {}))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", *options]
    argv += ["-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}), str(playbook)]
    return subprocess.run(argv, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)

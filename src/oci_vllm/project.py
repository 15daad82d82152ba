"""Where the collection's playbooks, ansible.cfg and collections dir are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def site_playbook(self) -> Path:
        return self.root / "playbooks" / "site.yml"

    @property
    def status_playbook(self) -> Path:
        return self.root / "playbooks" / "status.yml"

    def ansible_env(self) -> dict[str, str]:
        """Environment that makes ansible use this checkout's config and collections (no secrets in here)."""
        # A failing inventory source (e.g. OCI credentials missing) is an error, not an empty inventory.
        env = {"ANSIBLE_CONFIG": str(self.root / "ansible.cfg"), "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
        collections = self.root / ".collections"
        if collections.is_dir():
            existing = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
            env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(p for p in (str(collections), existing) if p)
        return env


def _is_root(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() and (path / "playbooks" / "site.yml").is_file()


def find_project() -> Project:
    """OCI_VLLM_PROJECT_DIR, else the checkout this package is installed from (editable), else the current dir."""
    explicit = os.environ.get("OCI_VLLM_PROJECT_DIR")
    if explicit:
        return Project(Path(explicit).resolve())
    for candidate in [*Path(__file__).resolve().parents, Path.cwd(), *Path.cwd().parents]:
        if _is_root(candidate):
            return Project(candidate)
    from .errors import BadInput

    raise BadInput(
        "cannot find the oci_gpu.vllm checkout (galaxy.yml + playbooks/site.yml): "
        "run from inside it or set OCI_VLLM_PROJECT_DIR"
    )

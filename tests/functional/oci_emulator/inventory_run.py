"""Run the oci_gpu inventory plugin in this process through Ansible's own InventoryManager (the real code path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
_loader_ready = False


def write_config(path: Path, **options: Any) -> Path:
    config = {"plugin": "oci_gpu.vllm.oci_gpu", **options}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def ensure_collection_loader() -> None:
    """Ansible's collection finder for .collections; call before importing anything from ansible_collections."""
    global _loader_ready
    from ansible.plugins.loader import init_plugin_loader

    if not _loader_ready:
        init_plugin_loader([str(ROOT / ".collections")])
        _loader_ready = True


def load_inventory(config: Path) -> Any:
    """An InventoryManager parsed from `config` (any plugin failure raises: unparsed sources are fatal here)."""
    from ansible import constants as C
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    ensure_collection_loader()
    C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    C.INVENTORY_UNPARSED_IS_FAILED = True
    return InventoryManager(loader=DataLoader(), sources=[str(config)])

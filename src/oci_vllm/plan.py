"""The collection's stdlib-only Python files (the sizing planner plugins/plugin_utils/_vllm_plan.py, the provision
logic plugins/module_utils/_oci_provision.py), loaded from the checkout, so the roles and the CLI run the same code.

They are loaded as a private package of this module (`oci_vllm._collection_plugin_utils`, whose path is the
checkout's plugins/plugin_utils; their relative imports resolve inside it), NOT under `ansible_collections`: a plain
import there would bind that namespace before Ansible's collection loader and break every later Ansible plugin load
in the same process (measured: the inventory plugin then fails with "collection metadata was not loaded").
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .project import Project


def load_collection_module(project: Project, folder: str, name: str) -> ModuleType:
    """Module `name` of `project`'s checkout under plugins/<folder> (plugin_utils, module_utils), loaded as a private
    package of this one (stdlib-only files: no Ansible import needed)."""
    package_name = f"oci_vllm._collection_{folder}"
    package = sys.modules.get(package_name)
    if package is None:
        package = ModuleType(package_name)
        package.__path__ = [str(project.root / "plugins" / folder)]
        sys.modules[package_name] = package
    return importlib.import_module(f"{package_name}.{name}")


def load_planner(project: Project) -> tuple[ModuleType, ModuleType]:
    """The planner and shape-table modules of `project`'s checkout."""
    return (
        load_collection_module(project, "plugin_utils", "_vllm_plan"),
        load_collection_module(project, "plugin_utils", "_oci_gpu_shapes"),
    )

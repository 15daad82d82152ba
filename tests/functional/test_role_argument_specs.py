"""Every role's meta/argument_specs.yml stays in step with its defaults/main.yml and README variables table."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def _role_docs():
    """scripts/role-docs.py (a script, not a package module: loaded by path)."""
    spec = importlib.util.spec_from_file_location("role_docs", ROOT / "scripts" / "role-docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _spec_options(role: str) -> dict:
    spec = _load(ROOT / "roles" / role / "meta" / "argument_specs.yml")
    return spec["argument_specs"]["main"].get("options", {})


def test_every_role_has_an_argument_spec() -> None:
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert roles, "no roles found"
    assert roles == ROLES, f"roles without meta/argument_specs.yml: {sorted(set(roles) - set(ROLES))}"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_name_the_same_variables(role: str) -> None:
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    options = _spec_options(role)
    assert set(defaults) - set(options) == set(), "in defaults/main.yml but not in meta/argument_specs.yml"
    # Required options may have no default; every optional one must.
    optional = {name for name, spec in options.items() if not spec.get("required", False)}
    assert optional - set(defaults) == set(), "optional in meta/argument_specs.yml but no default in defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_match_defaults_file(role: str) -> None:
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    for name, spec in _spec_options(role).items():
        if "default" in spec and name in defaults:
            assert spec["default"] == defaults[name], f"{name}: spec default {spec['default']!r} != {defaults[name]!r}"


@pytest.mark.parametrize("role", ROLES)
def test_variables_are_prefixed_with_the_role_name(role: str) -> None:
    for name in _spec_options(role):
        assert name.startswith(f"{role}_"), f"{name} lacks the {role}_ prefix"


@pytest.mark.parametrize("role", ROLES)
def test_readme_variables_table_lists_every_option(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    in_table = set(re.findall(r"^\|\s*`?(" + role + r"_[a-z0-9_]+)`?\s*\|", readme, flags=re.MULTILINE))
    options = set(_spec_options(role))
    assert options - in_table == set(), "options missing from the README variables table"
    assert in_table - options == set(), "README table lists variables the role does not have"


@pytest.mark.parametrize("role", ROLES)
def test_readme_variables_table_is_the_generated_one(role: str) -> None:
    role_docs = _role_docs()
    readme = (ROOT / "roles" / role / "README.md").read_text()
    assert role_docs.BEGIN in readme and role_docs.END in readme, "no generated table: run scripts/role-docs.py"
    stale = "the table differs from meta/argument_specs.yml: run scripts/role-docs.py"
    assert role_docs.rendered(readme, role) == readme, stale

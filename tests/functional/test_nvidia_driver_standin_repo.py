"""tests/standins/standin-apt-repo.sh builds a signed flat apt repository of the NVIDIA STAND-IN packages.

The package names, Provides, Depends and versions copy NVIDIA's CUDA repository (sources: tests/standins/README.md);
the checks below read the built Packages index and let apt itself resolve the graph (`apt-get -s`, no root needed
beyond what apt wants for its private directories; nothing is installed).
"""

from __future__ import annotations

import contextlib
import filecmp
import gzip
import hashlib
import importlib.util
import io
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "tests" / "standins" / "standin-apt-repo.sh"
PACKAGES = ROOT / "tests" / "standins" / "packages"
GOLDEN_HOST = ROOT / "tests" / "golden" / "real-nvidia-h200-host.txt"
TOOLS = ("dpkg-deb", "dpkg-scanpackages", "gpg", "gpgv")
BRANCHES = {"535": "535.183.01", "545": "545.23.08", "580": "580.95.05"}
UPDATE = "580.105.08"  # tests/standins/packages/nvidia-branches-update.vars

pytestmark = pytest.mark.skipif(any(shutil.which(tool) is None for tool in TOOLS), reason=f"needs {', '.join(TOOLS)}")
needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")


def _stanzas(packages: str) -> dict[str, list[dict[str, str]]]:
    """Package name -> its stanzas (one per version), fields by name."""
    result: dict[str, list[dict[str, str]]] = {}
    for block in packages.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "") and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        result.setdefault(fields["Package"], []).append(fields)
    return result


def _one(packages: dict[str, list[dict[str, str]]], name: str) -> dict[str, str]:
    assert name in packages, f"{name} missing"
    assert len(packages[name]) == 1, f"{name}: {[s['Version'] for s in packages[name]]}"
    return packages[name][0]


def _relations(field: str) -> list[str]:
    return [r.strip() for r in field.split(",")]


def _build(out: Path, sources: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None if sources is None else {**os.environ, "STANDIN_PACKAGES_DIR": str(sources)}
    return subprocess.run([str(BUILDER), str(out)], capture_output=True, text=True, check=True, env=env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("standin-repo")
    return out, _build(out).stdout


@pytest.fixture(scope="module")
def packages(repo: tuple[Path, str]) -> dict[str, list[dict[str, str]]]:
    return _stanzas((repo[0] / "Packages").read_text())


@pytest.fixture(scope="module")
def updated_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented way to get the later 580 point release: a private copy with the update vars appended."""
    sources = tmp_path_factory.mktemp("sources") / "packages"
    shutil.copytree(PACKAGES, sources, symlinks=True)
    with (sources / "nvidia-branches.vars").open("a") as branches:
        branches.write((PACKAGES / "nvidia-branches-update.vars").read_text())
    out = tmp_path_factory.mktemp("standin-repo-updated")
    _build(out, sources)
    return out


class Apt:
    """apt-get against one stand-in repository in a private apt directory; -s only, so nothing is installed."""

    def __init__(self, base: Path, repo: Path, installed: str = "") -> None:
        for sub in ("etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "lists/partial", "cache/archives"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        # python3 is what the stand-ins need from the distribution; the other "installed" packages come from the test.
        python3 = "Package: python3\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.11.2-1\n"
        (base / "status").write_text(f"{python3}Maintainer: t <t@example.invalid>\nDescription: t\n\n{installed}")
        keyring = repo / "standin-archive-keyring.gpg"
        (base / "etc/sources.list").write_text(f"deb [signed-by={keyring}] file:{repo} ./\n")
        (base / "apt.conf").write_text(
            "".join(
                f'{key} "{value}";\n'
                for key, value in {
                    "Dir::State": base,
                    "Dir::State::lists": base / "lists",
                    "Dir::State::status": base / "status",
                    "Dir::Cache": base / "cache",
                    "Dir::Etc": base / "etc",
                    "Dir::Etc::sourcelist": base / "etc/sources.list",
                    "APT::Architecture": "amd64",
                    "Debug::NoLocking": "true",
                    # the private directories are the test user's alone; apt's _apt sandbox could not read them
                    "APT::Sandbox::User": pwd.getpwuid(os.getuid()).pw_name,
                }.items()
            )
        )
        self.env = {**os.environ, "APT_CONFIG": str(base / "apt.conf"), "LC_ALL": "C"}
        update = self.run("update")
        assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, update.stdout + update.stderr

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "-q", *args], capture_output=True, text=True, env=self.env, check=False)

    def simulate(self, *args: str) -> tuple[int, dict[str, str], str]:
        """rc, {package: version} of the Inst lines, and apt's whole output."""
        done = self.run("-s", "--no-install-recommends", *args)
        text = done.stdout + done.stderr
        installs = dict(re.findall(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", text, re.M))
        return done.returncode, installs, text


def test_release_is_signed_by_the_exported_key(repo: tuple[Path, str]) -> None:
    out = repo[0]
    keyring = out / "standin-archive-keyring.gpg"
    for args in (["InRelease"], ["Release.gpg", "Release"]):
        subprocess.run(
            ["gpgv", "--keyring", str(keyring), *[str(out / a) for a in args]], check=True, capture_output=True
        )
    assert (out / "standin-archive-keyring.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_release_hashes_match_the_indexes(repo: tuple[Path, str]) -> None:
    out = repo[0]
    release = (out / "Release").read_text()
    for name in ("Packages", "Packages.gz"):
        data = (out / name).read_bytes()
        assert f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}\n" in release
        assert f" {hashlib.md5(data).hexdigest()} {len(data)} {name}\n" in release
    assert gzip.decompress((out / "Packages.gz").read_bytes()) == (out / "Packages").read_bytes()


def test_each_branch_has_nvidias_package_names_and_revisions(packages: dict[str, list[dict[str, str]]]) -> None:
    for branch, version in BRANCHES.items():
        meta_revision = "0ubuntu1" if branch == "580" else "1"  # cuda-drivers-580 changed revision style
        expected = {
            f"cuda-drivers-{branch}": f"{version}-{meta_revision}",
            f"nvidia-driver-{branch}": f"{version}-0ubuntu1",
            f"nvidia-dkms-{branch}": f"{version}-0ubuntu1",
            f"nvidia-dkms-{branch}-open": f"{version}-0ubuntu1",
            f"nvidia-kernel-source-{branch}": f"{version}-0ubuntu1",
            f"nvidia-kernel-source-{branch}-open": f"{version}-0ubuntu1",
            f"nvidia-utils-{branch}": f"{version}-0ubuntu1",
            f"libnvidia-compute-{branch}": f"{version}-0ubuntu1",
        }
        if branch == "580":
            expected |= {
                "nvidia-open-580": f"{version}-0ubuntu1",
                "nvidia-driver-580-open": f"{version}-0ubuntu1",
                "nvidia-fabricmanager": f"{version}-1",
                "libnvidia-nscq": f"{version}-1",
            }
            absent = {"nvidia-fabricmanager-580", "libnvidia-nscq-580", "nvidia-kernel-open-580"}
        else:
            expected |= {
                f"nvidia-kernel-open-{branch}": f"{version}-1",
                f"nvidia-fabricmanager-{branch}": f"{version}-1",
                f"libnvidia-nscq-{branch}": f"{version}-1",
            }
            absent = {f"nvidia-open-{branch}", f"nvidia-driver-{branch}-open"}
        assert {name: _one(packages, name)["Version"] for name in expected} == expected
        assert absent.isdisjoint(packages), absent & set(packages)
    # Canonical's archive builds carry 0ubuntu0.<release>.N; the role tells the sources apart by that.
    versions = [s["Version"] for stanzas in packages.values() for s in stanzas]
    assert not [v for v in versions if "ubuntu0." in v]
    assert all("STAND-IN" in s["Description"] for stanzas in packages.values() for s in stanzas)
    assert {"cuda-toolkit-12-3", "cuda-toolkit-13-0"} <= set(packages)


def test_driver_packages_have_nvidias_dependency_shape(packages: dict[str, list[dict[str, str]]]) -> None:
    for branch, version in BRANCHES.items():
        exact = f"{version}-0ubuntu1"
        for flavour in ("", "-open") if branch == "580" else ("",):
            depends = _relations(_one(packages, f"nvidia-driver-{branch}{flavour}")["Depends"])
            assert f"nvidia-dkms-{branch}{flavour} (<= {version}-1)" in depends
            assert f"nvidia-dkms-{branch}{flavour} (>= {version})" in depends
            assert f"nvidia-kernel-source-{branch}{flavour} (= {exact})" in depends
            assert f"libnvidia-compute-{branch} (= {exact})" in depends
            assert f"nvidia-utils-{branch} (= {exact})" in depends
        assert _one(packages, f"cuda-drivers-{branch}")["Depends"] == f"nvidia-driver-{branch} (>= {version})"
        for flavour in ("", "-open"):
            dkms = _one(packages, f"nvidia-dkms-{branch}{flavour}")
            # open and proprietary modules exclude each other through the virtual nvidia-dkms-kernel, as NVIDIA's do
            assert dkms["Provides"] == dkms["Conflicts"] == dkms["Replaces"] == "nvidia-dkms-kernel"
            assert f"nvidia-kernel-source-{branch}{flavour} (>= {version})" in _relations(dkms["Depends"])
            assert _one(packages, f"nvidia-kernel-source-{branch}{flavour}")["Provides"] == "nvidia-kernel-source"
        utils = _one(packages, f"nvidia-utils-{branch}")
        assert utils["Provides"] == utils["Conflicts"] == "nvidia-utils, nvidia-smi"
        assert f"libnvidia-compute-{branch} (>= {version})" in _relations(utils["Depends"])
    assert _one(packages, "nvidia-open-580")["Depends"] == "nvidia-driver-580-open (= 580.95.05-0ubuntu1)"
    for branch in ("535", "545"):
        kernel_open = _one(packages, f"nvidia-kernel-open-{branch}")
        assert f"nvidia-kernel-source-{branch} (= {BRANCHES[branch]}-0ubuntu1)" in _relations(kernel_open["Provides"])
        assert f"nvidia-kernel-source-{branch}" in _relations(kernel_open["Conflicts"])


def test_fabric_manager_and_nscq_follow_the_580_renaming(packages: dict[str, list[dict[str, str]]]) -> None:
    for branch in ("535", "545"):
        fabric_manager = _one(packages, f"nvidia-fabricmanager-{branch}")
        assert fabric_manager["Provides"] == fabric_manager["Conflicts"] == "nvidia-fabricmanager"
        nscq = _one(packages, f"libnvidia-nscq-{branch}")
        assert nscq["Provides"] == nscq["Conflicts"] == "libnvidia-nscq"
    # from 580: real package nvidia-fabricmanager, branch name only virtual; libnvidia-nscq unversioned
    assert _one(packages, "nvidia-fabricmanager")["Provides"] == "nvidia-fabricmanager-580"
    assert "Provides" not in _one(packages, "libnvidia-nscq")


def test_both_fabric_manager_templates_ship_the_same_stand_in() -> None:
    old, new = PACKAGES / "nvidia-fabricmanager-@BRANCH@", PACKAGES / "nvidia-fabricmanager"
    for path in (
        "lib/systemd/system/nvidia-fabricmanager.service",
        "usr/bin/nv-fabricmanager",
        "usr/lib/nvidia-standin/nv_fabricmanager.py",
    ):
        assert filecmp.cmp(old / path, new / path, shallow=False), path


@needs_apt
def test_apt_resolves_nvidias_install_paths(repo: tuple[Path, str], tmp_path: Path) -> None:
    apt = Apt(tmp_path, repo[0])
    # 580 proprietary: cuda-drivers-580 -> nvidia-driver-580 -> nvidia-dkms-580 and its kernel source
    rc, installs, text = apt.simulate("install", "cuda-drivers-580")
    assert rc == 0, text
    assert {"nvidia-driver-580", "nvidia-dkms-580", "nvidia-kernel-source-580", "nvidia-utils-580"} <= set(installs)
    assert not [name for name in installs if name.endswith("-open")]
    # 580 open: nvidia-open-580 -> nvidia-driver-580-open -> nvidia-dkms-580-open
    rc, installs, text = apt.simulate("install", "nvidia-open-580")
    assert rc == 0, text
    assert {"nvidia-driver-580-open", "nvidia-dkms-580-open", "nvidia-kernel-source-580-open"} <= set(installs)
    assert "nvidia-dkms-580" not in installs
    # both flavours at once cannot be installed (nvidia-dkms-kernel)
    assert apt.simulate("install", "cuda-drivers-580", "nvidia-open-580")[0] != 0
    # 545 open, NVIDIA's older way: nvidia-kernel-open-545 stands in for nvidia-kernel-source-545
    rc, installs, text = apt.simulate("install", "cuda-drivers-545", "nvidia-kernel-open-545")
    assert rc == 0, text
    assert "nvidia-dkms-545" in installs and "nvidia-kernel-source-545" not in installs
    # NVIDIA's own error from PR #451: the branch-numbered Fabric Manager name is virtual from 580 on
    rc, _installs, text = apt.simulate("install", "nvidia-fabricmanager-580=580.95.05-1")
    assert rc != 0 and "Version '580.95.05-1' for 'nvidia-fabricmanager-580' was not found" in text
    rc, installs, text = apt.simulate("install", "nvidia-fabricmanager=580.95.05-1", "libnvidia-nscq=580.95.05-1")
    assert rc == 0 and installs == {"nvidia-fabricmanager": "580.95.05-1", "libnvidia-nscq": "580.95.05-1"}, text
    # the branch-numbered 535 Fabric Manager and the unversioned one exclude each other
    assert apt.simulate("install", "nvidia-fabricmanager", "nvidia-fabricmanager-535")[0] != 0


def test_the_update_vars_add_a_later_580_release_only(
    packages: dict[str, list[dict[str, str]]], updated_repo: Path
) -> None:
    updated = _stanzas((updated_repo / "Packages").read_text())
    for name, stanzas in updated.items():
        versions = {s["Version"] for s in stanzas}
        base = {s["Version"] for s in packages[name]}
        if name.endswith(("-580", "-580-open")) or name in ("nvidia-fabricmanager", "libnvidia-nscq"):
            # same revision as the default build's, later upstream version
            later = {version.replace("580.95.05", UPDATE) for version in base}
            assert len(base) == 1 and versions == base | later, (name, versions)
        else:
            assert versions == base, name
    later = [s for s in updated["nvidia-fabricmanager"] if s["Version"] == f"{UPDATE}-1"]
    assert later and later[0]["Provides"] == "nvidia-fabricmanager-580"
    assert not (set(updated) - set(packages))


@needs_apt
def test_apt_upgrade_moves_unheld_580_packages_to_the_later_release(
    repo: tuple[Path, str], updated_repo: Path, tmp_path: Path
) -> None:
    base = _stanzas((repo[0] / "Packages").read_text())
    names = [
        "nvidia-open-580",
        "nvidia-driver-580-open",
        "nvidia-dkms-580-open",
        "nvidia-kernel-source-580-open",
        "libnvidia-compute-580",
        "nvidia-utils-580",
        "nvidia-fabricmanager",
        "libnvidia-nscq",
    ]

    def status(selection: str) -> str:
        keep = ("Package", "Version", "Architecture", "Maintainer", "Depends", "Provides", "Conflicts", "Replaces")
        blocks = []
        for name in names:
            fields = _one(base, name)
            lines = [f"{key}: {fields[key]}" for key in keep if key in fields]
            lines.insert(1, f"Status: {selection} ok installed")
            blocks.append("\n".join([*lines, "Description: t"]) + "\n")
        return "\n".join(blocks) + "\n"

    free = Apt(tmp_path / "free", updated_repo, status("install"))
    rc, installs, text = free.simulate("upgrade")
    assert rc == 0 and set(installs) == set(names), text
    assert {version.split("-")[0] for version in installs.values()} == {UPDATE}
    held = Apt(tmp_path / "held", updated_repo, status("hold"))
    rc, installs, text = held.simulate("upgrade")
    assert rc == 0 and installs == {}, text


def _stand_in_smi(repo: Path, tmp_path: Path, branch: str = "580"):
    deb = next(repo.glob(f"nvidia-utils-{branch}_*.deb"))
    root = tmp_path / f"nvidia-utils-{branch}"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    spec = importlib.util.spec_from_file_location(
        f"stand_in_smi_{branch}", root / "usr/lib/nvidia-standin/nvidia_smi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seams = tmp_path / "seams"
    seams.mkdir(exist_ok=True)
    module.SEAMS = str(seams)

    def run(*args: str) -> tuple[str, int]:
        out, code = io.StringIO(), 0
        with contextlib.redirect_stdout(out):
            try:
                module.main(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
        return out.getvalue(), code

    return root, seams, run


def test_nvidia_smi_is_templated_per_branch(repo: tuple[Path, str], tmp_path: Path) -> None:
    root, _seams, _run = _stand_in_smi(repo[0], tmp_path, "545")
    assert (root / "usr/bin/nvidia-smi").read_text().startswith("#!/bin/sh")
    smi = (root / "usr/lib/nvidia-standin/nvidia_smi.py").read_text()
    assert 'LIBRARY_VERSION = "545.23.08"' in smi
    assert 'CUDA_VERSION = "12.3"' in smi
    assert "@VERSION@" not in smi
    assert "@CUDA@" not in smi


def test_nvidia_smi_without_a_loaded_module_answers_like_the_real_one(repo: tuple[Path, str], tmp_path: Path) -> None:
    _root, _seams, run = _stand_in_smi(repo[0], tmp_path)
    # measured with the real nvidia-smi in a container, packages installed, no driver (environment.md)
    query = ("--query-gpu=index,name,driver_version,pci.bus_id,memory.total", "--format=csv,noheader,nounits")
    for args in ((), ("-L",), query):
        assert run(*args) == ("Failed to initialize NVML: Unknown Error\n", 255), args


def test_nvidia_smi_answers_in_the_real_formats(repo: tuple[Path, str], tmp_path: Path) -> None:
    _root, seams, run = _stand_in_smi(repo[0], tmp_path)
    (seams / "gpus").write_text("1 NVIDIA H200")
    (seams / "loaded-version").write_text("580.82.07")
    text, code = run("-L")
    assert code == 18 and "Driver/library version mismatch" in text
    (seams / "loaded-version").write_text("580.95.05")
    golden = GOLDEN_HOST.read_text()

    def real(command: str) -> str:
        return golden.split(f"### {command}\n", 1)[1].split("### rc=", 1)[0]

    table, code = run()
    real_table = real("nvidia-smi").splitlines()
    assert code == 0 and len(table.splitlines()) == len(real_table)
    for mine, theirs in zip(table.splitlines()[1:], real_table[1:]):
        # same frame: the same line length and column separators wherever the real line has them
        assert len(mine) == len(theirs), (mine, theirs)
        assert [i for i, c in enumerate(theirs) if c in "|+"] == [i for i, c in enumerate(mine) if c in "|+"]
    assert "| NVIDIA-SMI 580.95.05              Driver Version: 580.95.05      CUDA Version: 13.0     |" in table
    assert "NVIDIA H200 (STAND-IN)" in table and "143771MiB" in table
    assert run("--query-gpu=name") == ("name\nNVIDIA H200 (STAND-IN)\n", 0)  # CSV with header, as the real one
    assert run("--query-gpu=nonsense", "--format=csv") == (real("nvidia-smi --query-gpu=nonsense --format=csv"), 2)


def test_rerun_is_a_no_op_and_a_change_repacks_only_that_package(repo: tuple[Path, str], tmp_path: Path) -> None:
    out, first = repo
    assert "signed" in first
    again = _build(out)
    assert "is up to date" in again.stdout
    assert "built" not in again.stdout

    # a private copy of the sources with one changed package
    sources = tmp_path / "packages"
    shutil.copytree(PACKAGES, sources, symlinks=True)
    changelog = sources / "cuda-toolkit-@CUDA_DASH@" / "usr" / "share" / "doc" / "test-change"
    changelog.parent.mkdir(parents=True, exist_ok=True)
    changelog.write_text("changed\n")
    before = (out / "InRelease").read_text()
    changed = subprocess.run(
        [str(BUILDER), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "STANDIN_PACKAGES_DIR": str(sources)},
    )
    built = sorted(line.split()[-1] for line in changed.stdout.splitlines() if " built " in line)
    assert built == ["cuda-toolkit-12-3_12.3.2-1_all.deb", "cuda-toolkit-13-0_13.0.2-1_all.deb"]
    assert (out / "InRelease").read_text() != before


def test_a_vars_line_given_twice_is_refused(tmp_path: Path) -> None:
    sources = tmp_path / "packages"
    shutil.copytree(PACKAGES, sources, symlinks=True)
    with (sources / "nvidia-branches.vars").open("a") as branches:
        branches.write("BRANCH=580 VERSION=580.95.05 CUDA=13.0 NAMING=580 META_REV=0ubuntu1\n")
    failed = subprocess.run(
        [str(BUILDER), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "STANDIN_PACKAGES_DIR": str(sources)},
    )
    assert failed.returncode != 0 and "comes from two sources" in failed.stderr

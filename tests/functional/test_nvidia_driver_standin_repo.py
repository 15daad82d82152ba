"""scripts/standin-apt-repo.sh builds a signed flat apt repository of the NVIDIA STAND-IN packages."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "scripts" / "standin-apt-repo.sh"
TOOLS = ("dpkg-deb", "dpkg-scanpackages", "gpg", "gpgv")

pytestmark = pytest.mark.skipif(any(shutil.which(tool) is None for tool in TOOLS), reason=f"needs {', '.join(TOOLS)}")


def _stanzas(packages: str) -> dict[str, dict[str, str]]:
    result = {}
    for block in packages.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "") and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        result[fields["Package"]] = fields
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("standin-repo")
    first = subprocess.run([str(BUILDER), str(out)], capture_output=True, text=True, check=True)
    return out, first.stdout


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


def test_driver_packages_have_nvidias_names_and_dependency_shape(repo: tuple[Path, str]) -> None:
    out = repo[0]
    packages = _stanzas((out / "Packages").read_text())
    for branch, version in (("535", "535.183.01"), ("545", "545.23.08"), ("580", "580.95.05")):
        driver = packages[f"nvidia-driver-{branch}"]
        assert driver["Version"] == f"{version}-0ubuntu1"
        assert f"nvidia-dkms-{branch} (= {version}-0ubuntu1) | nvidia-dkms-{branch}-open" in driver["Depends"]
        assert packages[f"cuda-drivers-{branch}"]["Depends"] == f"nvidia-driver-{branch} (>= {version})"
        assert packages[f"nvidia-kernel-open-{branch}"]["Depends"].startswith(f"nvidia-dkms-{branch}-open ")
        # open and proprietary kernel modules exclude each other, as NVIDIA's do
        assert f"nvidia-dkms-{branch}-open" in packages[f"nvidia-dkms-{branch}"]["Conflicts"]
        assert f"nvidia-dkms-{branch}" in packages[f"nvidia-dkms-{branch}-open"]["Conflicts"]
        assert "nvidia-fabricmanager" in packages[f"nvidia-fabricmanager-{branch}"]["Conflicts"]
    assert {"cuda-toolkit-12-3", "cuda-toolkit-13-0"} <= set(packages)
    assert all("STAND-IN" in fields["Description"] for fields in packages.values())


def test_nvidia_smi_is_templated_per_branch(repo: tuple[Path, str], tmp_path: Path) -> None:
    out = repo[0]
    deb = next(out.glob("nvidia-utils-545_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    assert (tmp_path / "usr/bin/nvidia-smi").read_text().startswith("#!/bin/sh")
    smi = (tmp_path / "usr/lib/nvidia-standin/nvidia_smi.py").read_text()
    assert 'LIBRARY_VERSION = "545.23.08"' in smi
    assert 'CUDA_VERSION = "12.3"' in smi
    assert "@VERSION@" not in smi
    assert "@CUDA@" not in smi


def test_rerun_is_a_no_op_and_a_change_repacks_only_that_package(repo: tuple[Path, str], tmp_path: Path) -> None:
    out, first = repo
    assert "signed" in first
    again = subprocess.run([str(BUILDER), str(out)], capture_output=True, text=True, check=True)
    assert "is up to date" in again.stdout
    assert "built" not in again.stdout

    # a private copy of the sources with one changed package
    sources = tmp_path / "packages"
    shutil.copytree(ROOT / "tests" / "standins" / "packages", sources, symlinks=True)
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

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Which NVIDIA driver packages to install, purge and hold (nvidia_driver_packages module logic).

Two sources (the role's README, "Driver sources"):
- ``ubuntu``: Canonical's server builds in the Ubuntu archive (restricted, multiverse). Kernel modules come
  precompiled and signed per kernel ABI (``linux-modules-nvidia-<b>-server[-open]-<kernel release>``); each such
  package pins the driver to one version (``nvidia-kernel-common-<b>-server (>= V)``, ``(<= V-1)``), so the driver
  version is read from the module package of the kernel(s) that run and boot next, as ubuntu-drivers does. DKMS
  (``nvidia-headless-<b>-server[-open]`` + headers) only where no precompiled module exists.
- ``cuda``: NVIDIA's CUDA repository. From branch 560 the open modules come with ``nvidia-open-<b>``; before it
  ``cuda-drivers-<b>`` + ``nvidia-kernel-open-<b>``; proprietary ``cuda-drivers-<b>`` + ``nvidia-dkms-<b>`` (NVIDIA's
  CUDA installation guide, "Driver installation"). From 580 Fabric Manager and NSCQ are the unversioned
  ``nvidia-fabricmanager`` / ``libnvidia-nscq`` installed at ``=<driver version>``; ``nvidia-fabricmanager-580`` is
  only a virtual name there (NVIDIA/gpu-driver-container ubuntu24.04/install.sh and PR #451).
Every wanted package is resolved to an exact ``name=version`` from apt's own answers BEFORE anything is purged: a
name without an install candidate fails the run with the names and what the sources offer, and the host is unchanged.
Nothing here knows about AnsibleModule: commands run through an injected callable; tests feed recorded apt answers.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_state import (
    _PACKAGE_BRANCH as _BRANCH_IN_NAME,
)
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_state import (
    DPKG_FORMAT,
    parse_dpkg,
)
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_state import (
    upstream_version as upstream,
)

Runner = Callable[[List[str]], Tuple[int, str, str]]

SOURCES = ("ubuntu", "cuda")
KERNEL_MODULES = ("auto", "precompiled", "dkms")
# NVIDIA's CUDA repository ships the open-module meta package nvidia-open-<branch> from branch 560 on.
CUDA_NVIDIA_OPEN_MIN_BRANCH = 560
# ... and Fabric Manager / NSCQ without the branch in the name from 580 on.
CUDA_UNVERSIONED_FM_MIN_BRANCH = 580
# Canonical's rebuilds carry the Ubuntu release in the revision (580.196.07-0ubuntu0.24.04.1); NVIDIA's do not
# (580.95.05-0ubuntu1, 580.95.05-1).
_CANONICAL_REVISION = re.compile(r"ubuntu[0-9]+\.[0-9]{2}\.[0-9]{2}")
# Package families whose name says which kernel module flavour they carry (open when "-open" is in the name).
_FLAVOUR_FAMILIES = re.compile(
    r"^(nvidia-dkms|nvidia-kernel-source|nvidia-kernel-open|nvidia-headless(-no-dkms)?|nvidia-open"
    r"|linux-(modules|objects|signatures)-nvidia)-[0-9]{3}"
)
# Unversioned meta packages that follow NVIDIA's newest branch: never wanted, they would move a host to a new branch.
_LATEST_METAS = ("cuda-drivers", "nvidia-open", "cuda-drivers-fabricmanager")
# NVIDIA's unversioned packages that belong to a branch through their version (580 on).
_UNVERSIONED_BY_VERSION = ("nvidia-fabricmanager", "nvidia-fabricmanager-dev", "libnvidia-nscq", "libnvsdm")
_KERNEL_PACKAGE = re.compile(r"^linux-((modules|objects|signatures)-nvidia|headers)-")
_KERNEL_IMAGE = re.compile(r"^linux-image-(?:unsigned-)?([0-9]+\.[0-9]+\.[0-9]+-[0-9]+-[a-z0-9-]+)$")


class PackagesError(Exception):
    """The wanted driver cannot be installed from the configured sources (nothing has been changed)."""

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg


def source_of(version: str, name: str = "") -> str:
    """ubuntu for Canonical's builds, cuda for NVIDIA's (by the revision, see _CANONICAL_REVISION). Kernel packages
    (precompiled modules, headers) carry the kernel's version and come only from the Ubuntu archive."""
    if _KERNEL_PACKAGE.match(name):
        return "ubuntu"
    return "ubuntu" if _CANONICAL_REVISION.search(version or "") else "cuda"


def _natural(text: str) -> Tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", text))


# A version table line of a distribution archive ("500 http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64
# Packages"); NVIDIA's flat repository has no suite/component ("1000 https://developer.../x86_64  Packages").
_ARCHIVE_ORIGIN = re.compile(r"^ +-?[0-9]+ \S+ \S+/(main|restricted|universe|multiverse) ")
_ANY_ORIGIN = re.compile(r"^ +-?[0-9]+ \S+://")


def parse_policy(stdout: str) -> Dict[str, Dict[str, object]]:
    """`apt-cache policy NAME...` -> {name: {installed, candidate, versions (newest first), sources {version: set}}}.

    sources: "ubuntu" for a version served by a distribution archive, "cuda" for one served by a flat repository;
    none for a version only in /var/lib/dpkg/status. No entry: apt does not know the name.
    """
    result: Dict[str, Dict[str, object]] = {}
    current: Optional[Dict[str, object]] = None
    version = ""
    for line in (stdout or "").splitlines():
        header = re.match(r"^(\S+):$", line)
        if header:
            current = {"installed": "", "candidate": "", "versions": [], "sources": {}}
            result[header.group(1)] = current
            continue
        if current is None:
            continue
        field = re.match(r"^  (Installed|Candidate): (\S+)$", line)
        if field:
            value = "" if field.group(2) == "(none)" else field.group(2)
            current[field.group(1).lower()] = value
            continue
        row = re.match(r"^ (?:\*\*\*| {3}) (\S+) (-?[0-9]+)$", line)
        versions: List[str] = current["versions"]  # type: ignore[assignment]
        sources: Dict[str, set] = current["sources"]  # type: ignore[assignment]
        if row:
            version = row.group(1)
            versions.append(version)
            sources.setdefault(version, set())
        elif version and _ANY_ORIGIN.match(line):
            sources[version].add("ubuntu" if _ARCHIVE_ORIGIN.match(line) else "cuda")
    return result


def kernel_common_version(depends: str, branch: str) -> str:
    """V from `nvidia-kernel-common-<b>-server (>= V)` in a precompiled module package's Depends; "" if absent."""
    match = re.search(r"nvidia-kernel-common-%s-server \(>= ([^)]+)\)" % re.escape(branch), depends or "")
    return match.group(1).strip() if match else ""


def parse_show_depends(stdout: str) -> str:
    """The Depends field of the first stanza of `apt-cache show NAME=VERSION`."""
    match = re.search(r"^Depends: (.*)$", stdout or "", re.M)
    return match.group(1) if match else ""


def target_kernels(installed: Dict[str, Dict[str, object]], running: str) -> List[str]:
    """Kernels that need modules: the running one (when it came from a package) and the newest installed one
    (the one that boots next: GRUB's default entry is the newest kernel)."""
    packaged = sorted({m.group(1) for m in map(_KERNEL_IMAGE.match, installed) if m}, key=_natural)
    targets = [running] if running in packaged else []
    if packaged and packaged[-1] not in targets:
        targets.append(packaged[-1])
    return targets


def wanted_names(
    source: str, branch: str, open_modules: bool, fabricmanager: bool, toolkit: str, mode: str, kernels: Sequence[str]
) -> Dict[str, List[str]]:
    """Package names per role: driver (first is the version reference), modules, fabricmanager, toolkit."""
    b = branch
    if source == "ubuntu":
        flavour = "-server-open" if open_modules else "-server"
        if mode == "dkms":
            driver = ["nvidia-headless-%s%s" % (b, flavour), "nvidia-utils-%s-server" % b]
            modules = ["linux-headers-%s" % k for k in kernels]
        else:
            driver = ["nvidia-headless-no-dkms-%s%s" % (b, flavour), "nvidia-utils-%s-server" % b]
            modules = ["linux-modules-nvidia-%s%s-%s" % (b, flavour, k) for k in kernels]
        fm = ["nvidia-fabricmanager-%s" % b, "libnvidia-nscq-%s" % b]
        return {"driver": driver, "modules": modules, "fabricmanager": fm if fabricmanager else [], "toolkit": []}
    if open_modules:
        driver = ["nvidia-open-%s" % b] if int(b) >= CUDA_NVIDIA_OPEN_MIN_BRANCH else ["cuda-drivers-%s" % b]
        modules = [] if int(b) >= CUDA_NVIDIA_OPEN_MIN_BRANCH else ["nvidia-kernel-open-%s" % b]
    else:
        driver, modules = ["cuda-drivers-%s" % b], ["nvidia-dkms-%s" % b]
    if int(b) >= CUDA_UNVERSIONED_FM_MIN_BRANCH:
        fm = ["nvidia-fabricmanager", "libnvidia-nscq"]
    else:
        fm = ["nvidia-fabricmanager-%s" % b, "libnvidia-nscq-%s" % b]
    tk = ["cuda-toolkit-%s" % toolkit] if toolkit else []
    return {"driver": driver, "modules": modules, "fabricmanager": fm if fabricmanager else [], "toolkit": tk}


def _versions(policy: Dict[str, Dict[str, object]], name: str, source: str) -> List[str]:
    """Versions of a package the source serves, newest first: by where apt finds them (an archive or a flat
    repository), else by the revision (a version known only from dpkg's status)."""
    info = policy.get(name, {})
    origins: Dict[str, set] = info.get("sources", {})  # type: ignore[assignment]
    found = []
    for version in info.get("versions", []):  # type: ignore[attr-defined]
        served = origins.get(version) or {source_of(version, name)}
        if source in served:
            found.append(version)
    return found


def _at_upstream(policy: Dict[str, Dict[str, object]], name: str, source: str, version: str) -> str:
    """The newest version of a package from the source whose upstream is `version`; "" when none."""
    for candidate in _versions(policy, name, source):
        if upstream(candidate) == version:
            return candidate
    return ""


def _newest(policy: Dict[str, Dict[str, object]], name: str, source: str) -> str:
    versions = _versions(policy, name, source)
    return versions[0] if versions else ""


def _offered_branches(run: Runner, source: str) -> List[str]:
    """Driver branches the source offers (for the error message): names from apt, versions of that source only."""
    pattern = "^nvidia-headless-no-dkms-[0-9]{3}-server$" if source == "ubuntu" else "^nvidia-driver-[0-9]{3}(-open)?$"
    rc, out, _err = run(["apt-cache", "pkgnames", "nvidia-"])
    names = sorted(n for n in out.split() if re.match(pattern, n)) if rc == 0 else []
    policy = _policy(run, names)
    offered = [n for n in names if _versions(policy, n, source)]
    return sorted({_BRANCH_IN_NAME.search(n).group(1) for n in offered})


def resolve(
    run: Runner,
    source: str,
    branch: str,
    open_modules: bool,
    fabricmanager: bool,
    toolkit: str,
    mode: str,
    kernels: Sequence[str],
    wanted_version: str = "",
    kernel_headers: bool = False,
) -> dict:
    """Resolve the wanted packages to exact versions from apt's answers; PackagesError names what is missing.

    kernel_headers (cuda source): also the headers of `kernels`, which NVIDIA's DKMS packages build against.
    """
    if not re.match(r"^[0-9]{3}$", branch or ""):
        raise PackagesError("branch '%s' is not an NVIDIA driver branch: three digits, e.g. 580" % branch)
    if source not in SOURCES:
        raise PackagesError("source '%s' is not known; allowed: %s" % (source, ", ".join(SOURCES)))
    if mode not in KERNEL_MODULES:
        raise PackagesError("kernel_modules '%s' is not known; allowed: %s" % (mode, ", ".join(KERNEL_MODULES)))
    chosen_mode = "dkms" if source == "cuda" else mode
    notes: List[str] = []
    if source == "ubuntu" and mode != "dkms" and not kernels:
        raise PackagesError(
            "no kernel installed from a package (linux-image-*): the ubuntu source installs kernel modules for the "
            "packaged kernel that runs and the one that boots next"
        )
    names = wanted_names(source, branch, open_modules, fabricmanager, toolkit, "precompiled", kernels)
    if source == "ubuntu" and mode != "dkms":
        all_names = names["driver"] + names["modules"] + names["fabricmanager"]
        policy = _policy(run, all_names)
        missing_modules = [n for n in names["modules"] if not _newest(policy, n, "ubuntu")]
        if missing_modules and mode == "precompiled":
            raise PackagesError(
                "No precompiled NVIDIA %s module for kernel(s) %s: %s not in any configured source. Use "
                "nvidia_driver_kernel_modules: auto (DKMS where none is packaged) or another branch."
                % (branch, ", ".join(kernels), ", ".join(missing_modules))
            )
        if missing_modules:
            notes.append("no precompiled module for %s: DKMS builds it" % ", ".join(missing_modules))
            chosen_mode = "dkms"
        else:
            chosen_mode = "precompiled"
    if chosen_mode == "dkms":
        names = wanted_names(source, branch, open_modules, fabricmanager, toolkit, "dkms", kernels)
        if source == "cuda" and kernel_headers:
            names["toolkit"] += ["linux-headers-%s" % k for k in kernels]
        policy = _policy(run, names["driver"] + names["modules"] + names["fabricmanager"] + names["toolkit"])

    pinned: List[str] = []
    missing: List[str] = []
    version = ""
    if chosen_mode == "precompiled":
        # The module packages pin the driver version: one version for every kernel, or no driver fits them all.
        per_kernel = {}
        for name in names["modules"]:
            candidate = _newest(policy, name, "ubuntu")
            rc, out, _err = run(["apt-cache", "show", "%s=%s" % (name, candidate)])
            per_kernel[name] = kernel_common_version(parse_show_depends(out) if rc == 0 else "", branch)
            # Its Depends, read above, fix the driver version that is installed exactly.
            pinned.append("%s=%s" % (name, candidate))
        versions = sorted(set(per_kernel.values()))
        if len(versions) != 1 or not versions[0]:
            raise PackagesError(
                "The precompiled NVIDIA %s modules need different driver versions: %s. Boot one kernel "
                "(remove the older one) or use nvidia_driver_kernel_modules: dkms."
                % (branch, ", ".join("%s needs %s" % (n, v or "?") for n, v in sorted(per_kernel.items())))
            )
        version = versions[0]
        if wanted_version and wanted_version != version:
            raise PackagesError(
                "nvidia_driver_wanted_version %s does not match the precompiled modules for kernel(s) %s, built for "
                "driver %s" % (wanted_version, ", ".join(kernels), version)
            )
    else:
        reference = names["driver"][0]
        candidates = _versions(policy, reference, source)
        if wanted_version:
            candidates = [c for c in candidates if upstream(c) == wanted_version]
        version = upstream(candidates[0]) if candidates else ""
        if source == "ubuntu":  # DKMS: the headers of each kernel, at their candidate (they belong to the kernel)
            for name in names["modules"]:
                candidate = _newest(policy, name, "ubuntu")
                if candidate:
                    pinned.append("%s=%s" % (name, candidate))
                else:
                    missing.append(name)
        else:
            names["driver"] += names["modules"]
    exact = names["driver"] + names["fabricmanager"]
    for name in exact:
        found = _at_upstream(policy, name, source, version) if version else ""
        if found:
            pinned.append("%s=%s" % (name, found))
        else:
            missing.append(name)
    if version and not missing:
        pinned += _branch_dependencies(run, pinned, branch, source, version, open_modules)
    for name in names["toolkit"]:  # the toolkit, and kernel headers (the Ubuntu archive's): their newest build
        newest = _newest(policy, name, "ubuntu" if _KERNEL_PACKAGE.match(name) else source)
        if newest:
            pinned.append("%s=%s" % (name, newest))
        else:
            missing.append(name)
    if missing:
        offered = _offered_branches(run, source)
        raise PackagesError(
            "No install candidate for NVIDIA driver branch %s%s from the %s source: %s. Branches the configured %s "
            "source offers here: %s. Nothing was changed."
            % (
                branch,
                " version %s" % (wanted_version or version) if (wanted_version or version) else "",
                source,
                ", ".join(sorted(set(missing))),
                source,
                ", ".join(offered) or "none",
            )
        )
    if source == "ubuntu":
        _refuse_transitional(run, next(p for p in pinned if p.startswith(names["driver"][0] + "=")), branch)
    fm_versions = {n: v for n, v in (p.split("=", 1) for p in pinned if "=" in p) if n in names["fabricmanager"]}
    return {
        "install": pinned,
        "driver_version": version,
        "kernel_modules": chosen_mode,
        "kernels": list(kernels),
        "fabricmanager_version": upstream(next(iter(fm_versions.values()), "")),
        "notes": notes,
    }


def _branch_dependencies(
    run: Runner, specs: Sequence[str], branch: str, source: str, version: str, open_modules: bool
) -> List[str]:
    """The branch's packages that the wanted ones pull in (libnvidia-compute-<b>..., nvidia-kernel-common-<b>...), at
    the driver version too: apt would take each at its newest, which breaks exact Depends when the wanted version is
    not the newest (an older point release, or the one a kernel's precompiled modules are built for), and leaves a
    held one where it is when the wanted version is a newer point release."""
    wanted = {spec.split("=", 1)[0] for spec in specs}
    rc, out, _err = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                         "--no-breaks", "--no-replaces", "--no-enhances", *specs])  # fmt: skip
    found = set(re.findall(r"^ *(?:\|?(?:Pre)?Depends: )?([a-z0-9][a-z0-9.+-]+)$", out, re.M)) if rc == 0 else set()
    # A dependency satisfied by either flavour lists both providers: only this flavour's are named.
    names = sorted(
        n
        for n in found - wanted
        if is_driver_package(n)
        and package_branch(n, "") == branch
        and not other_flavour(n, source, branch, open_modules)
    )
    policy = _policy(run, names)
    pinned = []
    for name in names:
        at_version = _at_upstream(policy, name, source, version)
        if at_version:  # also at the candidate: a held dependency moves only when named (measured)
            pinned.append("%s=%s" % (name, at_version))
    return pinned


def transitional_target(depends: str, branch: str) -> str:
    """The branch a package of `branch` merely points to (Canonical retires a branch by making its packages depend on
    another branch's, e.g. nvidia-headless-no-dkms-570-server-open -> ...-580-server-open); "" for a real build."""
    firsts = [part.split("|")[0].strip().split(" ")[0] for part in (depends or "").split(",")]
    others = sorted({m.group(1) for m in map(re.compile(r"-([0-9]{3})-server").search, firsts) if m} - {branch})
    return others[-1] if others else ""


def _refuse_transitional(run: Runner, spec: str, branch: str) -> None:
    rc, out, _err = run(["apt-cache", "show", spec])
    target = transitional_target(parse_show_depends(out) if rc == 0 else "", branch)
    if target:
        raise PackagesError(
            "%s is a transitional package to branch %s in the Ubuntu archive (Canonical retired branch %s): "
            "installing it would bring the branch %s driver. Set nvidia_driver_branch: '%s'. Nothing was changed."
            % (spec.replace("=", " "), target, branch, target, target)
        )


def _policy(run: Runner, names: Sequence[str]) -> Dict[str, Dict[str, object]]:
    if not names:
        return {}
    _rc, out, _err = run(["apt-cache", "policy", *names])
    return parse_policy(out)


def is_driver_package(name: str) -> bool:
    """An NVIDIA driver package (not the container toolkit, which has no branch)."""
    if name.startswith(("nvidia-container", "libnvidia-container")):
        return False
    return bool(
        re.match(r"^(lib)?nvidia-", name)
        or re.match(r"^linux-(modules|objects|signatures)-nvidia-", name)
        or re.match(r"^cuda-drivers", name)
    )


def package_branch(name: str, version: str) -> str:
    """The driver branch a package belongs to; "" for branch-less ones (linux-signatures-nvidia-<kernel> included)."""
    if name in _UNVERSIONED_BY_VERSION:
        return upstream(version).split(".")[0]
    kernel_package = re.match(r"^linux-(?:modules|objects|signatures)-nvidia-(?:([0-9]{3})-)?", name)
    if kernel_package:
        return kernel_package.group(1) or ""
    match = _BRANCH_IN_NAME.search(name)
    return match.group(1) if match else ""


def other_flavour(name: str, source: str, branch: str, open_modules: bool) -> bool:
    """A package of the other kernel module flavour (open when "-open" is in its name)."""
    # NVIDIA's repository before 560: nvidia-dkms-<b> builds whichever source is installed (nvidia-kernel-open-<b>
    # stands in for nvidia-kernel-source-<b>), so it belongs to both flavours.
    if source == "cuda" and int(branch) < CUDA_NVIDIA_OPEN_MIN_BRANCH and name == "nvidia-dkms-%s" % branch:
        return False
    return bool(_FLAVOUR_FAMILIES.match(name)) and ("-open" in name) != open_modules


def classify(
    installed: Dict[str, Dict[str, object]], source: str, branch: str, open_modules: bool, kernel_modules: str
) -> Dict[str, List[str]]:
    """Installed driver packages: own (this source, branch, flavour, module kind: held) and purge (everything else)."""
    own: List[str] = []
    purge: List[str] = []
    for name in sorted(installed):
        version = str(installed[name].get("version", ""))
        # Branch-less helpers (nvidia-modprobe, nvidia-settings, ...) stay: driver packages of any branch use them.
        if not is_driver_package(name) or (name not in _LATEST_METAS and not package_branch(name, version)):
            continue
        wrong = (
            name in _LATEST_METAS
            or package_branch(name, version) != branch
            or source_of(version, name) != source
            or other_flavour(name, source, branch, open_modules)
            or (
                source == "ubuntu"
                and kernel_modules == "precompiled"
                and re.match(r"^nvidia-(dkms|headless)-[0-9]", name)
            )
            or (source == "ubuntu" and kernel_modules == "dkms" and name.startswith("linux-modules-nvidia-"))
        )
        (purge if wrong else own).append(name)
    return {"own": own, "purge": purge}


def pending(run: Runner, specs: Sequence[str]) -> List[str]:
    """The `name=version` specs dpkg does not have installed at exactly that version: what an install would change.

    One dpkg-query for the names. Empty on a converged host, so the role can skip ansible.builtin.apt, whose check of
    each versioned name builds an apt policy over the whole cache (about 3.5 s a package on a 2-core test host; an
    unchanged 11-package driver cost 45 s per run)."""
    if not specs:
        return []
    _rc, out, _err = run(["dpkg-query", "-W", "-f=" + DPKG_FORMAT, *(s.partition("=")[0] for s in specs)])
    have = parse_dpkg(out)
    return [s for s in specs if have.get(s.partition("=")[0], {}).get("version") != s.partition("=")[2]]

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Which NVIDIA driver a host really runs, and what nvidia_driver does about it (nvidia_driver_state module logic).

Sources of truth, in this order: the loaded kernel module (/sys/module/nvidia/version, /proc/driver/nvidia/version),
nvidia-smi (does the driver answer, which version, which GPUs), and the dpkg database (which driver packages are
installed). A driver that works but did not come from packages (OCI's GPU images, runfile installs, the H200 host of
tests/golden/) is a fact like any other. Formats are checked against the real outputs in tests/golden/.
Nothing here knows about AnsibleModule: commands run through an injected callable.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Tuple

Runner = Callable[[List[str]], Tuple[int, str, str]]

# nvidia-smi fields the role reads; nounits: memory.total is a plain MiB number.
SMI_FIELDS = ("index", "name", "driver_version", "pci.bus_id", "memory.total")
SMI_QUERY = ["--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits"]
# dpkg-query patterns that cover Canonical's and NVIDIA's driver packages and the precompiled module packages.
DPKG_PATTERNS = [
    "nvidia-*",
    "libnvidia-*",
    "cuda-drivers*",
    "linux-modules-nvidia-*",
    "linux-objects-nvidia-*",
    "linux-signatures-nvidia-*",
]
DPKG_FORMAT = "${db:Status-Abbrev}\t${Package}\t${Version}\n"
# Packages whose version is the driver's version, most telling first: NVIDIA's and Canonical's driver meta packages,
# Canonical's headless server set, then the user-space libraries every variant installs.
_VERSION_PACKAGES = (
    "nvidia-driver-{b}",
    "nvidia-driver-{b}-open",
    "nvidia-driver-{b}-server",
    "nvidia-driver-{b}-server-open",
    "nvidia-headless-no-dkms-{b}-server-open",
    "nvidia-headless-no-dkms-{b}-server",
    "nvidia-headless-no-dkms-{b}-open",
    "nvidia-headless-no-dkms-{b}",
    "nvidia-utils-{b}-server",
    "nvidia-utils-{b}",
    "libnvidia-compute-{b}-server",
    "libnvidia-compute-{b}",
    "nvidia-kernel-common-{b}-server",
    "nvidia-kernel-common-{b}",
)
_VERSION = re.compile(r"\b([0-9]{3})\.[0-9]+(?:\.[0-9]+)?\b")
_PACKAGE_BRANCH = re.compile(r"-([0-9]{3})(?:-|$)")
OTHER_BRANCH_POLICIES = ("auto", "replace", "keep", "fail")


class DriverStateError(Exception):
    """The host's state makes the role stop (e.g. another branch is working and the policy says fail)."""

    def __init__(self, msg: str, result: Optional[dict] = None):
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


def branch_of(version: str) -> str:
    match = _VERSION.search(version or "")
    return match.group(1) if match else ""


def parse_loaded_module(text: str) -> Tuple[str, str]:
    """(version, flavour) from /sys/module/nvidia/version ("580.159.04") or /proc/driver/nvidia/version.

    flavour: "open", "proprietary", or "" when the text does not say (the /sys file holds the bare version).
    """
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    match = _VERSION.search(first)
    if not match:
        return "", ""
    flavour = ""
    # "Open Kernel Module for x86_64" (NVIDIA's kernel_open README) and "Open Kernel x86_64 Kernel Module" (590.48.01,
    # nix-community/nixGL#220) are open; "NVIDIA UNIX x86_64 Kernel Module" is proprietary.
    if "Open Kernel" in first:
        flavour = "open"
    elif "Kernel Module" in first:
        flavour = "proprietary"
    return match.group(0), flavour


def parse_smi_query(stdout: str) -> List[Dict[str, object]]:
    """Rows of nvidia-smi SMI_QUERY (index, name, driver_version, pci.bus_id, memory.total; csv, noheader, nounits)."""
    gpus: List[Dict[str, object]] = []
    for line in (stdout or "").splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(SMI_FIELDS) or not cells[0].isdigit():
            continue
        memory = cells[4].split()[0] if cells[4] else ""
        gpus.append(
            {
                "index": int(cells[0]),
                "name": cells[1],
                "driver_version": cells[2],
                "pci_bus_id": cells[3],
                "memory_total_mib": int(memory) if memory.isdigit() else None,
            }
        )
    return gpus


def count_smi_list(stdout: str) -> int:
    """GPUs in `nvidia-smi -L` output ("GPU 0: NVIDIA H200 (UUID: GPU-...)"); MIG lines are indented and not counted."""
    return sum(1 for line in (stdout or "").splitlines() if re.match(r"^GPU [0-9]+: ", line))


def parse_dpkg(stdout: str) -> Dict[str, Dict[str, object]]:
    """Installed packages from `dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n'`.

    Status "ii" is installed, "hi" installed and held; "rc", "un" and half-installed states are not installed.
    """
    packages: Dict[str, Dict[str, object]] = {}
    for line in (stdout or "").splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        status, name, version = (f.strip() for f in fields)
        if len(status) >= 2 and status[1] == "i" and status[0] in "ih":
            packages[name] = {"version": version, "hold": status[0] == "h"}
    return packages


def upstream_version(deb_version: str) -> str:
    """580.159.04 from 580.159.04-0ubuntu0.24.04.1 (Canonical) or 580.95.05-1ubuntu1 (NVIDIA); "" when unknown."""
    match = re.match(r"^(?:[0-9]+:)?([0-9][0-9.]*)(?:[-+~].*)?$", deb_version or "")
    return match.group(1).rstrip(".") if match else ""


def packaged_version(packages: Dict[str, Dict[str, object]], branch: str) -> Tuple[str, str]:
    """(driver version, package it was read from) for the given branch, or ("", "") when none is installed."""
    for pattern in _VERSION_PACKAGES:
        name = pattern.format(b=branch)
        if name in packages:
            return upstream_version(str(packages[name]["version"])), name
    return "", ""


def package_branches(packages: Dict[str, Dict[str, object]]) -> List[str]:
    """Driver branches some installed package belongs to (by the -<branch> in its name)."""
    branches = set()
    for name in packages:
        if name.startswith(("nvidia-container", "libnvidia-container")):
            continue  # the container toolkit has no branch
        match = _PACKAGE_BRANCH.search(name)
        if match:
            branches.add(match.group(1))
    return sorted(branches)


def probe(
    run: Runner,
    read_file: Callable[[str], Optional[str]],
    loaded_version_files: List[str],
    nvidia_smi: Optional[str],
    reboot_required_file: str,
) -> dict:
    """Read the host: loaded module, nvidia-smi, driver packages, the system's own reboot request. Read-only."""
    loaded = {"version": "", "flavour": "", "source": ""}
    for path in loaded_version_files:
        text = read_file(path)
        if text is None:
            continue
        version, flavour = parse_loaded_module(text)
        if version and not loaded["version"]:
            loaded.update(version=version, source=path)
        if version == loaded["version"] and flavour and not loaded["flavour"]:
            loaded["flavour"] = flavour
    smi: dict = {"path": nvidia_smi or "", "rc": None, "ok": False, "gpus": [], "driver_version": "", "error": ""}
    if not nvidia_smi:
        smi["error"] = "nvidia-smi is not installed"
    else:
        rc, out, err = run([nvidia_smi, *SMI_QUERY])
        gpus = parse_smi_query(out) if rc == 0 else []
        smi.update(rc=rc, gpus=gpus, ok=rc == 0 and len(gpus) > 0)
        smi["driver_version"] = str(gpus[0]["driver_version"]) if gpus else ""
        if not smi["ok"]:
            message = " ".join((out + " " + err).split())
            smi["error"] = (
                "nvidia-smi exited %s: %s" % (rc, message or "(no output)") if rc else "nvidia-smi lists no GPU"
            )
    rc, out, _err = run(["dpkg-query", "-W", "-f=" + DPKG_FORMAT, *DPKG_PATTERNS])
    packages = parse_dpkg(out)
    return {
        "loaded": loaded,
        "smi": smi,
        "packages": packages,
        "package_branches": package_branches(packages),
        "system_reboot_requested": read_file(reboot_required_file) is not None,
    }


def decide(state: dict, branch: str, adopt_working: bool = True, other_branch: str = "auto") -> dict:
    """What the role does on this host: manage packages? reboot (after installing)? Which driver must verify?

    action: ok (our packages, loaded, answering) | adopt (a working driver of the wanted branch not from packages,
    left alone) | keep (another branch works and stays) | install (no driver loaded) | replace (a working driver is
    replaced by the wanted branch's packages) | reboot (the wanted packages are installed, another module is loaded).
    Raises DriverStateError for other_branch=fail (or auto on a driver that did not come from packages).
    """
    if other_branch not in OTHER_BRANCH_POLICIES:
        raise DriverStateError(
            "nvidia_driver_other_branch=%r is not allowed: use one of %s"
            % (other_branch, ", ".join(OTHER_BRANCH_POLICIES))
        )
    loaded = state["loaded"]["version"]
    flavour = state["loaded"]["flavour"]
    smi = state["smi"]
    packages = state["packages"]
    installed, installed_from = packaged_version(packages, branch)
    loaded_branch = branch_of(loaded)
    working = bool(loaded) and smi["ok"] and smi["driver_version"] == loaded
    module = "%s%s" % (loaded, " (%s kernel module)" % flavour if flavour else "")
    if working:
        health = "nvidia-smi sees %d GPU(s)" % len(smi["gpus"])
    else:
        health = smi["error"] or "nvidia-smi reports driver %s" % smi["driver_version"]
    described = "%s; %s" % (module, health)

    def result(action: str, reason: str, verify_version: str) -> dict:
        return {
            "action": action,
            "reason": reason,
            "manage_packages": action in ("ok", "install", "replace", "reboot"),
            "reboot_required": action in ("install", "replace", "reboot"),
            "verify_version": verify_version,
            "installed_version": installed,
            "installed_from": installed_from,
            "loaded_version": loaded,
            "loaded_flavour": flavour,
        }

    if not loaded:
        if installed:
            return result(
                "reboot",
                "no NVIDIA kernel module is loaded (%s); driver %s is installed (%s)"
                % (smi["error"] or "nvidia-smi answers", installed, installed_from),
                installed,
            )
        return result("install", "no NVIDIA kernel module is loaded and no branch %s driver is installed" % branch, "")
    if installed and installed != loaded:
        return result(
            "reboot",
            "the loaded kernel module is %s, the installed driver %s (%s)" % (described, installed, installed_from),
            installed,
        )
    if loaded_branch == branch:
        if installed:
            return result(
                "ok", "driver %s is installed (%s) and loaded: %s" % (installed, installed_from, described), loaded
            )
        if not working:
            return result("install", "driver %s is loaded without packages: %s" % (loaded, described), "")
        if adopt_working:
            return result(
                "adopt",
                "driver %s is loaded and works (%s) but was not installed from packages: adopted as it is "
                "(nvidia_driver_adopt_working=true; false replaces it with branch %s packages)"
                % (module, health, branch),
                loaded,
            )
        return result(
            "replace",
            "driver %s works (%s) but nvidia_driver_adopt_working=false: branch %s packages replace it"
            % (module, health, branch),
            "",
        )
    # Another branch is loaded.
    from_packages = packaged_version(packages, loaded_branch)[0] == loaded
    policy = other_branch
    if policy == "auto":
        policy = "replace" if from_packages or not working else "fail"
    mismatch = "branch %s wanted, %s found" % (branch, described)
    if policy == "keep":
        return result("keep", "%s: kept (nvidia_driver_other_branch=keep)" % mismatch, loaded)
    if policy == "replace":
        return result(
            "replace",
            "%s: replaced by branch %s packages (nvidia_driver_other_branch=%s)" % (mismatch, branch, other_branch),
            "",
        )
    raise DriverStateError(
        "nvidia_driver_branch %s wanted, but driver %s is loaded and working (%s)%s. "
        "Set nvidia_driver_other_branch=keep to use it as it is, or replace to install branch %s packages "
        "(other branches' packages purged, reboot needed)."
        % (branch, module, health, "" if from_packages else " and was not installed from packages", branch),
        {"state": state},
    )


def verify(state: dict, decision: dict, expected_gpus: int) -> List[str]:
    """Problems that make the verification fail (empty: the driver is verified)."""
    smi = state["smi"]
    if not smi["ok"]:
        return ["nvidia-smi does not answer: %s" % smi["error"]]
    problems = []
    want = decision["verify_version"] or decision["installed_version"]
    if want and smi["driver_version"] != want:
        problems.append(
            "nvidia-smi reports driver %s but %s is expected (%s)" % (smi["driver_version"], want, decision["action"])
        )
    loaded = state["loaded"]["version"]
    if loaded and smi["driver_version"] != loaded:
        problems.append(
            "nvidia-smi reports driver %s but the loaded kernel module is %s" % (smi["driver_version"], loaded)
        )
    if len(smi["gpus"]) < expected_gpus:
        problems.append("nvidia-smi sees %d GPU(s) but %d are expected" % (len(smi["gpus"]), expected_gpus))
    return problems

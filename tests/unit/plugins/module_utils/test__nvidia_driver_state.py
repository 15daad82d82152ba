# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""nvidia_driver_state logic against the real H200 host's answers (tests/golden/) and the decisions built on them."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_state import (
    DPKG_FORMAT,
    DPKG_PATTERNS,
    SMI_QUERY,
    DriverStateError,
    count_smi_list,
    decide,
    parse_dpkg,
    parse_loaded_module,
    parse_smi_query,
    probe,
    upstream_version,
    verify,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.nvidia_golden import GOLDEN, output

ROLE_RUN = "real-h200-role-commands.txt"  # the commands the role runs, answered by the H200 host (tests/realhost)
HOST = "real-nvidia-h200-host.txt"  # a wider survey of the same host
STANDIN_SMI = GOLDEN.parent / "standins/packages/nvidia-utils-@BRANCH@/usr/lib/nvidia-standin/nvidia_smi.py"
# A line of `nvidia-smi -L` as the real driver prints it (golden) and as the stand-in must print it.
LIST_LINE = re.compile(
    r"^GPU [0-9]+: [A-Za-z0-9 ()-]+ \(UUID: GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)$"
)
QUERY_LINE = re.compile(
    r"^[0-9]+, [^,]+, [0-9]{3}\.[0-9]+(\.[0-9]+)?, [0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-9], [0-9]+$"
)


def golden_runner(name):
    """A command runner answering the role's own commands from a golden file."""
    table = {
        tuple(["nvidia-smi", *SMI_QUERY]): output(
            name, "nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total"
        ),
        tuple(["dpkg-query", "-W", "-f=" + DPKG_FORMAT, *DPKG_PATTERNS]): output(name, "dpkg-query -W"),
    }

    def run(argv):
        text, rc = table[tuple(["nvidia-smi" if argv[0].endswith("nvidia-smi") else argv[0], *argv[1:]])]
        return rc, text, ""

    return run


def golden_files(name):
    files = {
        "/sys/module/nvidia/version": output(name, "cat /sys/module/nvidia/version")[0],
        "/proc/driver/nvidia/version": output(name, "cat /proc/driver/nvidia/version")[0],
    }
    return files.get


def h200_state():
    return probe(
        golden_runner(ROLE_RUN),
        golden_files(ROLE_RUN),
        ["/sys/module/nvidia/version", "/proc/driver/nvidia/version"],
        "/usr/local/nvidia/bin/nvidia-smi",
        "/var/run/reboot-required",
    )


def test_loaded_module_from_the_real_files():
    assert parse_loaded_module(output(ROLE_RUN, "cat /sys/module/nvidia/version")[0]) == ("580.159.04", "")
    assert parse_loaded_module(output(ROLE_RUN, "cat /proc/driver/nvidia/version")[0]) == ("580.159.04", "open")
    assert parse_loaded_module(output(HOST, "cat /proc/driver/nvidia/version")[0]) == ("580.159.04", "open")


@pytest.mark.parametrize(
    "text, expected",
    [
        # proprietary module, as quoted in dylanaraps/neofetch#876
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  384.98  Thu Oct 26 15:16:01 PDT 2017\n",
            ("384.98", "proprietary"),
        ),
        # open module 590.48.01's wording, as quoted in nix-community/nixGL#220
        (
            "NVRM version: NVIDIA UNIX Open Kernel x86_64 Kernel Module  590.48.01  Mon Dec  8 11:22:45 UTC 2025\n",
            ("590.48.01", "open"),
        ),
        ("", ("", "")),
        ("garbage\n", ("", "")),
    ],
)
def test_loaded_module_other_formats(text, expected):
    assert parse_loaded_module(text) == expected


def test_smi_query_and_list_from_the_real_host():
    text, rc = output(ROLE_RUN, "nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total")
    assert rc == 0
    assert parse_smi_query(text) == [
        {
            "index": 0,
            "name": "NVIDIA H200",
            "driver_version": "580.159.04",
            "pci_bus_id": "00000000:00:06.0",
            "memory_total_mib": 143771,
        }
    ]
    listed, rc = output(ROLE_RUN, "nvidia-smi -L")
    assert rc == 0 and count_smi_list(listed) == 1
    assert all(LIST_LINE.match(line) for line in listed.splitlines())
    assert count_smi_list(output(HOST, "nvidia-smi -L")[0]) == 1


def test_smi_errors_are_not_gpus():
    text, rc = output(ROLE_RUN, "nvidia-smi --query-gpu=index,name --format=csv,noheader --id=7")
    assert (text.strip(), rc) == ("No devices were found", 6)
    assert parse_smi_query(text) == [] and count_smi_list(text) == 0


def test_dpkg_status_filter():
    # The real host knows one package only as "un" (not installed): no driver packages.
    assert parse_dpkg(output(ROLE_RUN, "dpkg-query -W")[0]) == {}
    text = (
        "ii \tnvidia-utils-580-server\t580.159.03-0ubuntu0.24.04.1\n"
        "hi \tlibnvidia-compute-580-server\t580.159.03-0ubuntu0.24.04.1\n"
        "rc \tnvidia-dkms-570\t570.1-1\n"
    )
    assert parse_dpkg(text) == {
        "nvidia-utils-580-server": {"version": "580.159.03-0ubuntu0.24.04.1", "hold": False},
        "libnvidia-compute-580-server": {"version": "580.159.03-0ubuntu0.24.04.1", "hold": True},
    }


@pytest.mark.parametrize(
    "deb, upstream",
    [
        ("580.159.03-0ubuntu0.24.04.1", "580.159.03"),
        ("580.95.05-1ubuntu1", "580.95.05"),
        ("1:545.23.08-0ubuntu1", "545.23.08"),
        ("", ""),
    ],
)
def test_upstream_version(deb, upstream):
    assert upstream_version(deb) == upstream


def test_h200_working_driver_not_from_packages_is_adopted_without_reboot():
    state = h200_state()
    assert state["loaded"] == {"version": "580.159.04", "flavour": "open", "source": "/sys/module/nvidia/version"}
    assert state["smi"]["ok"] and state["packages"] == {} and not state["system_reboot_requested"]
    decision = decide(state, "580")
    assert decision["action"] == "adopt"
    assert not decision["reboot_required"] and not decision["manage_packages"]
    assert decision["verify_version"] == "580.159.04"
    assert "580.159.04 (open kernel module)" in decision["reason"]
    assert verify(state, decision, 1) == []
    assert verify(state, decision, 8) == ["nvidia-smi sees 1 GPU(s) but 8 are expected"]


def test_h200_other_branch_is_a_named_decision():
    state = h200_state()
    with pytest.raises(DriverStateError) as refused:
        decide(state, "570")
    assert (
        "570 wanted" in refused.value.msg
        and "580.159.04" in refused.value.msg
        and "not installed from packages" in refused.value.msg
    )
    kept = decide(state, "570", other_branch="keep")
    assert (kept["action"], kept["reboot_required"], kept["manage_packages"]) == ("keep", False, False)
    assert verify(state, kept, 1) == []
    replaced = decide(state, "570", other_branch="replace")
    assert (replaced["action"], replaced["reboot_required"], replaced["manage_packages"]) == ("replace", True, True)
    assert decide(state, "580", adopt_working=False)["action"] == "replace"
    with pytest.raises(DriverStateError, match="nvidia_driver_other_branch='maybe' is not allowed"):
        decide(state, "580", other_branch="maybe")


def _state(loaded="", smi_version="", packages=None, gpus=1):
    smi_ok = bool(smi_version)
    return {
        "loaded": {"version": loaded, "flavour": "", "source": "/sys/module/nvidia/version" if loaded else ""},
        "smi": {
            "ok": smi_ok,
            "rc": 0 if smi_ok else 9,
            "driver_version": smi_version,
            "gpus": [{"index": i, "name": "NVIDIA A10", "driver_version": smi_version} for i in range(gpus)]
            if smi_ok
            else [],
            "error": "" if smi_ok else "nvidia-smi exited 9: couldn't communicate with the NVIDIA driver",
        },
        "packages": {name: {"version": version, "hold": False} for name, version in (packages or {}).items()},
        "system_reboot_requested": False,
    }


def test_bare_host_then_installed_then_rebooted():
    assert decide(_state(), "580")["action"] == "install"
    after_install = _state(packages={"nvidia-driver-580": "580.95.05-0ubuntu1"})
    decision = decide(after_install, "580")
    assert (decision["action"], decision["reboot_required"], decision["installed_version"]) == (
        "reboot",
        True,
        "580.95.05",
    )
    rebooted = _state("580.95.05", "580.95.05", {"nvidia-driver-580": "580.95.05-0ubuntu1"})
    decision = decide(rebooted, "580")
    assert (decision["action"], decision["reboot_required"], decision["manage_packages"]) == ("ok", False, True)
    assert verify(rebooted, decision, 1) == []


def test_branch_change_from_packages_is_replaced_then_rebooted():
    old = _state("570.1.1", "570.1.1", {"nvidia-driver-570": "570.1.1-0ubuntu1"})
    assert decide(old, "580")["action"] == "replace"
    half = _state("570.1.1", "", {"nvidia-driver-580": "580.95.05-0ubuntu1"})
    decision = decide(half, "580")
    assert decision["action"] == "reboot" and "570.1.1" in decision["reason"] and "580.95.05" in decision["reason"]


def test_package_upgrade_under_a_loaded_module_needs_a_reboot():
    upgraded = _state("580.95.05", "", {"nvidia-utils-580-server": "580.159.03-0ubuntu0.24.04.1"})
    decision = decide(upgraded, "580")
    assert decision["action"] == "reboot" and decision["installed_from"] == "nvidia-utils-580-server"


def test_verify_names_a_version_mismatch():
    state = _state("580.95.05", "580.82.07", {"nvidia-driver-580": "580.95.05-0ubuntu1"})
    problems = verify(state, decide(state, "580"), 1)
    assert "nvidia-smi reports driver 580.82.07 but 580.95.05 is expected (ok)" in problems


def _standin_smi(tmp_path, args, loaded="545.23.08", version="545.23.08", gpus="2 NVIDIA A10"):
    spec = importlib.util.spec_from_file_location("standin_nvidia_smi", str(STANDIN_SMI))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "gpus").write_text(gpus)
    if loaded:
        (tmp_path / "loaded-version").write_text(loaded)
    module.SEAMS, module.LIBRARY_VERSION, module.CUDA_VERSION = str(tmp_path), version, "12.3"
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            module.main(args)
        except SystemExit as exc:
            code = exc.code
    return out.getvalue(), code


def test_standin_smi_prints_the_real_formats(tmp_path):
    listed, code = _standin_smi(tmp_path, ["-L"])
    assert code == 0 and count_smi_list(listed) == 2
    assert all(LIST_LINE.match(line) for line in listed.splitlines()), listed
    query, code = _standin_smi(tmp_path, SMI_QUERY)
    real, _rc = output(ROLE_RUN, "nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total")
    assert all(QUERY_LINE.match(line) for line in real.splitlines())
    assert code == 0 and all(QUERY_LINE.match(line) for line in query.splitlines()), query
    assert [g["driver_version"] for g in parse_smi_query(query)] == ["545.23.08", "545.23.08"]


def test_standin_smi_errors_match_the_real_ones(tmp_path):
    real, real_rc = output(HOST, "nvidia-smi --query-gpu=nonsense")
    text, code = _standin_smi(tmp_path, ["--query-gpu=nonsense", "--format=csv"])
    assert (text.splitlines()[0], code) == (real.splitlines()[0], real_rc)
    # No module loaded, packages installed: what the REAL nvidia-smi prints in a container (environment.md, measured).
    unloaded = tmp_path / "unloaded"
    unloaded.mkdir()
    text, code = _standin_smi(unloaded, SMI_QUERY, loaded="")
    assert (text.splitlines()[0], code) == ("Failed to initialize NVML: Unknown Error", 255)

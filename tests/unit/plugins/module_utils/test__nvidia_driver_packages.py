# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""nvidia_driver_packages logic against the REAL Ubuntu archive's apt answers (recorded on a noble test host on
2026-12-06, tests/golden/apt-cache-noble-2026-12-06/) and against apt answers shaped like NVIDIA's CUDA repository."""

from __future__ import annotations

import json

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils._nvidia_driver_packages import (
    PackagesError,
    classify,
    parse_policy,
    pending,
    resolve,
    source_of,
    target_kernels,
    transitional_target,
    upstream,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.nvidia_golden import GOLDEN

RECORDED = GOLDEN / "apt-cache-noble-2026-12-06"
KERNEL = "7.0.0-1017-oracle"  # the newest linux-image-oracle on noble that day (what boots next on the test host)


def replay(name: str):
    """A runner answering each command exactly as the real host did (unknown commands fail the test)."""
    answers = json.loads((RECORDED / name).read_text())

    def run(argv):
        rc, out, err = answers[" ".join(argv)]
        return rc, out, err

    return run


def ubuntu(run, branch="580", **kwargs):
    args = dict(open_modules=True, fabricmanager=True, toolkit="", mode="auto", kernels=[KERNEL])
    args.update(kwargs)
    return resolve(run, "ubuntu", branch, **args)


def test_ubuntu_580_takes_the_precompiled_module_and_the_driver_version_it_is_built_for():
    result = ubuntu(replay("branch-580.json"))
    assert result["kernel_modules"] == "precompiled"
    assert result["driver_version"] == "580.196.07"
    assert result["install"] == [
        "linux-modules-nvidia-580-server-open-7.0.0-1017-oracle=7.0.0-1017.21~24.04.1+1",
        "nvidia-headless-no-dkms-580-server-open=580.196.07-0ubuntu0.24.04.1",
        "nvidia-utils-580-server=580.196.07-0ubuntu0.24.04.1",
        "nvidia-fabricmanager-580=580.196.07-0ubuntu0.24.04.1",
        "libnvidia-nscq-580=580.196.07-0ubuntu0.24.04.1",
        # the branch's own dependencies, at the same version (apt would take each at its newest, or leave it held)
        "libnvidia-cfg1-580-server=580.196.07-0ubuntu0.24.04.1",
        "libnvidia-compute-580-server=580.196.07-0ubuntu0.24.04.1",
        "nvidia-compute-utils-580-server=580.196.07-0ubuntu0.24.04.1",
        "nvidia-firmware-580-server-580.196.07=580.196.07-0ubuntu0.24.04.1",
        "nvidia-kernel-common-580-server=580.196.07-0ubuntu0.24.04.1",
        "nvidia-kernel-source-580-server-open=580.196.07-0ubuntu0.24.04.1",
    ]
    assert result["fabricmanager_version"] == result["driver_version"]


def test_a_wanted_version_the_precompiled_modules_are_not_built_for_is_refused():
    with pytest.raises(PackagesError, match=r"580\.95\.05 does not match .* built for driver 580\.196\.07"):
        ubuntu(replay("branch-580.json"), wanted_version="580.95.05")


def test_a_retired_branch_is_refused_naming_the_branch_it_became():
    # Canonical made branch 570 transitional (its packages depend on 580's): it would install 580, not 570.
    with pytest.raises(PackagesError) as caught:
        ubuntu(replay("branch-570.json"), branch="570")
    assert "transitional package to branch 580" in caught.value.msg
    assert "nvidia_driver_branch: '580'" in caught.value.msg
    assert "Nothing was changed" in caught.value.msg


def test_precompiled_only_fails_where_the_archive_has_no_module_for_the_kernel():
    with pytest.raises(PackagesError, match=r"No precompiled NVIDIA 570 module for kernel"):
        ubuntu(replay("branch-570.json"), branch="570", mode="precompiled")


def test_the_recorded_policy_parses():
    answers = json.loads((RECORDED / "branch-580.json").read_text())
    policy = parse_policy(next(v[1] for k, v in answers.items() if k.startswith("apt-cache policy")))
    assert policy["nvidia-utils-580-server"]["candidate"] == "580.196.07-0ubuntu0.24.04.1"
    assert policy["nvidia-utils-580-server"]["installed"] == ""
    assert policy["linux-modules-nvidia-580-server-open-%s" % KERNEL]["versions"] == ["7.0.0-1017.21~24.04.1+1"]


# NVIDIA's CUDA repository, as its stand-in copies it (tests/standins/README.md): from 580 the unversioned Fabric
# Manager and NSCQ; nvidia-open-580 for the open modules.
CUDA_POLICY = """\
nvidia-open-580:
  Installed: (none)
  Candidate: 580.95.05-0ubuntu1
  Version table:
     580.95.05-0ubuntu1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
nvidia-fabricmanager:
  Installed: (none)
  Candidate: 580.95.05-1
  Version table:
     580.95.05-1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
libnvidia-nscq:
  Installed: (none)
  Candidate: 580.95.05-1
  Version table:
     580.95.05-1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
"""


# Ubuntu's archive also carries nvidia-driver-550 (Canonical's build) and, in jammy's release pocket, old builds whose
# revision looks like NVIDIA's (nvidia-driver-460 460.91.03-0ubuntu1): where apt finds a version decides its source.
OFFERED = ["nvidia-driver-460", "nvidia-driver-535", "nvidia-driver-550", "nvidia-driver-580-open"]
OFFERED_POLICY = """\
nvidia-driver-460:
  Installed: (none)
  Candidate: 460.91.03-0ubuntu1
  Version table:
     460.91.03-0ubuntu1 500
        500 http://archive.ubuntu.com/ubuntu jammy/restricted amd64 Packages
nvidia-driver-535:
  Installed: (none)
  Candidate: 535.183.01-0ubuntu1
  Version table:
     535.183.01-0ubuntu1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
nvidia-driver-550:
  Installed: (none)
  Candidate: 550.163.01-0ubuntu0.24.04.1
  Version table:
     550.163.01-0ubuntu0.24.04.1 500
        500 http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages
nvidia-driver-580-open:
  Installed: (none)
  Candidate: 580.95.05-0ubuntu1
  Version table:
     580.95.05-0ubuntu1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
"""


def cuda_runner(policy: str, depends: str = ""):
    """apt's answers for the cuda source; depends: what `apt-cache depends --recurse` prints."""

    def run(argv):
        if argv[:2] == ["apt-cache", "policy"] and argv[2:] == OFFERED:
            return 0, OFFERED_POLICY, ""
        if argv[:2] == ["apt-cache", "policy"]:
            return 0, policy, ""
        if argv[:2] == ["apt-cache", "depends"]:
            return 0, depends, ""
        if argv[:2] == ["apt-cache", "pkgnames"]:
            return (
                0,
                "nvidia-driver-460\nnvidia-driver-535\nnvidia-driver-550\nnvidia-driver-580-open\nnvidia-fabricmanager\n",
                "",
            )
        raise AssertionError("unexpected command %s" % argv)

    return run


def test_cuda_580_uses_nvidia_open_and_the_unversioned_fabric_manager_at_the_driver_version():
    result = resolve(cuda_runner(CUDA_POLICY), "cuda", "580", True, True, "", "auto", [])
    assert result["install"] == [
        "nvidia-open-580=580.95.05-0ubuntu1",
        "nvidia-fabricmanager=580.95.05-1",
        "libnvidia-nscq=580.95.05-1",
    ]
    assert result["fabricmanager_version"] == "580.95.05"


def test_a_branch_without_candidates_names_each_package_and_what_is_offered():
    with pytest.raises(PackagesError) as caught:
        resolve(cuda_runner(CUDA_POLICY), "cuda", "550", True, True, "", "auto", [])
    assert "nvidia-open-550" not in caught.value.msg  # 550 < 560: the older names
    assert "cuda-drivers-550, libnvidia-nscq-550, nvidia-fabricmanager-550, nvidia-kernel-open-550" in caught.value.msg
    assert "offers here: 535, 580" in caught.value.msg


def test_classify_purges_other_branches_sources_flavours_and_keeps_helpers():
    installed = {
        name: {"version": version, "hold": False}
        for name, version in [
            ("nvidia-headless-no-dkms-580-server-open", "580.196.07-0ubuntu0.24.04.1"),
            ("linux-modules-nvidia-580-server-open-7.0.0-1017-oracle", "7.0.0-1017.21~24.04.1+1"),
            ("nvidia-headless-no-dkms-595-server-open", "595.112.07-0ubuntu0.24.04.1"),
            ("nvidia-dkms-580-server", "580.196.07-0ubuntu0.24.04.1"),  # proprietary flavour
            ("nvidia-utils-580", "580.95.05-0ubuntu1"),  # NVIDIA's build of the same branch
            ("cuda-drivers", "580.95.05-1"),  # follows the newest branch
            ("nvidia-container-toolkit", "1.17.8-1"),
            ("nvidia-modprobe", "580.95.05-0ubuntu1"),
        ]
    }
    classes = classify(installed, "ubuntu", "580", True, "precompiled")
    assert classes["own"] == [
        "linux-modules-nvidia-580-server-open-7.0.0-1017-oracle",
        "nvidia-headless-no-dkms-580-server-open",
    ]
    assert classes["purge"] == [
        "cuda-drivers",
        "nvidia-dkms-580-server",
        "nvidia-headless-no-dkms-595-server-open",
        "nvidia-utils-580",
    ]


def test_kernels_are_the_packaged_running_one_and_the_newest():
    installed = {"linux-image-%s" % k: {"version": "x", "hold": False} for k in ("6.8.0-1049-oracle", KERNEL)}
    installed["linux-image-oracle"] = {"version": "x", "hold": False}  # a meta package, not a kernel
    assert target_kernels(installed, "6.8.0-1049-oracle") == ["6.8.0-1049-oracle", KERNEL]
    assert target_kernels(installed, KERNEL) == [KERNEL]
    assert target_kernels(installed, "6.1.0-28-cloud-amd64") == [KERNEL]  # a container: the build machine's kernel
    assert target_kernels({}, KERNEL) == []


def test_versions_and_sources():
    assert upstream("580.196.07-0ubuntu0.24.04.1") == "580.196.07"
    assert source_of("580.196.07-0ubuntu0.24.04.1") == "ubuntu"
    assert source_of("580.95.05-0ubuntu1") == "cuda"
    assert source_of("7.0.0-1017.21~24.04.1+1", "linux-modules-nvidia-580-server-open-7.0.0-1017-oracle") == "ubuntu"
    assert transitional_target("nvidia-headless-no-dkms-595-server-open", "590") == "595"
    assert transitional_target("nvidia-kernel-common-580-server (>= 580.196.07)", "580") == ""


def test_before_560_nvidias_dkms_package_serves_both_flavours():
    installed = {
        name: {"version": "545.23.08-0ubuntu1", "hold": False}
        for name in ("nvidia-dkms-545", "nvidia-kernel-open-545", "nvidia-kernel-source-545", "nvidia-driver-545")
    }
    assert classify(installed, "cuda", "545", True, "dkms")["purge"] == ["nvidia-kernel-source-545"]
    assert classify(installed, "cuda", "545", False, "dkms")["purge"] == ["nvidia-kernel-open-545"]


def test_cuda_takes_the_headers_of_the_kernels_from_the_ubuntu_archive():
    headers = """\
linux-headers-6.8.0-1049-oracle:
  Installed: (none)
  Candidate: 6.8.0-1049.50
  Version table:
     6.8.0-1049.50 500
        500 http://archive.ubuntu.com/ubuntu noble-updates/main amd64 Packages
"""
    result = resolve(cuda_runner(CUDA_POLICY + headers), "cuda", "580", True, False, "", "auto",
                     ["6.8.0-1049-oracle"], kernel_headers=True)  # fmt: skip
    assert result["install"] == ["nvidia-open-580=580.95.05-0ubuntu1", "linux-headers-6.8.0-1049-oracle=6.8.0-1049.50"]


def test_an_older_point_release_pins_the_branch_packages_it_pulls_in():
    two = """\
{name}:
  Installed: (none)
  Candidate: 580.105.08-0ubuntu1
  Version table:
     580.105.08-0ubuntu1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
     580.95.05-0ubuntu1 1000
        1000 http://127.0.0.1:8765/ubuntu2404/x86_64  Packages
"""
    names = ("nvidia-open-580", "libnvidia-compute-580", "nvidia-driver-580-open", "nvidia-kernel-source-580")
    policy = "".join(two.format(name=n) for n in names)
    # The shape of `apt-cache depends --recurse` (a virtual package in angle brackets, its provider indented).
    depends = (
        "nvidia-open-580\n  Depends: nvidia-driver-580-open\nnvidia-driver-580-open\n  Depends: libnvidia-compute-580\n"
        "  Depends: <nvidia-kernel-common-580-580.95.05>\n    libnvidia-compute-580\n  Depends: libc6\n"
        # either flavour's source satisfies a dependency: the proprietary one must not be named for open modules
        "  Depends: <nvidia-kernel-source-580-any>\n    nvidia-kernel-source-580\n"
        "libnvidia-compute-580\nlibc6\n"
    )
    result = resolve(
        cuda_runner(policy, depends), "cuda", "580", True, False, "", "auto", [], wanted_version="580.95.05"
    )
    assert result["install"] == [
        "nvidia-open-580=580.95.05-0ubuntu1",
        "libnvidia-compute-580=580.95.05-0ubuntu1",
        "nvidia-driver-580-open=580.95.05-0ubuntu1",
    ]


def test_kernel_packages_and_signatures_have_their_own_branch_rule():
    assert classify(
        {
            "linux-signatures-nvidia-5.15.0-125-generic": {"version": "5.15.0-125.135", "hold": False},
            "linux-modules-nvidia-580-server-open-5.15.0-125-generic": {"version": "5.15.0-125.135", "hold": False},
        },
        "ubuntu",
        "580",
        True,
        "precompiled",
    ) == {"own": ["linux-modules-nvidia-580-server-open-5.15.0-125-generic"], "purge": []}


def test_pending_is_what_dpkg_lacks_at_the_exact_version():
    asked = []

    def run(argv):
        asked.append(argv)
        # dpkg-query's answer: held and installed count; a removed-but-configured (rc) or half-configured (iF) one
        # does not; an unknown name is simply absent (dpkg-query exits 1 then).
        return (
            1,
            (
                "hi \tnvidia-utils-595-server\t595.112.07-0ubuntu0.24.04.1\n"
                "ii \tlibnvidia-compute-595-server\t595.100.01-0ubuntu0.24.04.1\n"
                "rc \tnvidia-kernel-common-595-server\t595.112.07-0ubuntu0.24.04.1\n"
                "iF \tnvidia-firmware-595-server-595.112.07\t595.112.07-0ubuntu0.24.04.1\n"
            ),
            "dpkg-query: no packages found matching nvidia-fabricmanager-595\n",
        )

    specs = [
        "nvidia-utils-595-server=595.112.07-0ubuntu0.24.04.1",
        "libnvidia-compute-595-server=595.112.07-0ubuntu0.24.04.1",
        "nvidia-kernel-common-595-server=595.112.07-0ubuntu0.24.04.1",
        "nvidia-firmware-595-server-595.112.07=595.112.07-0ubuntu0.24.04.1",
        "nvidia-fabricmanager-595=595.112.07-0ubuntu0.24.04.1",
    ]
    assert pending(run, specs) == specs[1:]
    assert asked == [["dpkg-query", "-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\n",
                      *(s.partition("=")[0] for s in specs)]]  # fmt: skip
    assert pending(run, specs[:1]) == []
    assert pending(run, []) == [] and len(asked) == 2

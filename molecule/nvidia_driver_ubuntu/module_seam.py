#!/usr/bin/python3
"""Test fixture (runs on the test host as root): the precompiled NVIDIA module packages that the archive mirror here
cannot deliver.

The archive INDEX lists linux-modules-nvidia-<branch>-server-open-<kernel> for the newest oracle kernels, but the
mirror answers 404 for their files (measured 2026-12-06: 7.0.0-1016/1017 and 6.8.0-1067/1068; older kernels' files
download but pin driver versions the index no longer carries). For each wanted module package whose file does not
download, this builds a STAND-IN .deb with the real index entry's Package, Architecture and Depends (read from this
host's `apt-cache show`) at the real Version plus "+standin1", published in a local flat repository. A kernel module
is the physical edge a container cannot load anyway; every other driver package still comes from the real archive.
Where the file downloads (the real archive), nothing is stood in.
    module_seam.py BRANCH [BRANCH...]      prints JSON: kernel, per branch the package and whether it is stood in
"""

import json
import os
import re
import subprocess
import sys
import tempfile

REPO = "/srv/nd-module-seam"


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))


def newest_kernel():
    out = sh("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n", "linux-image-*").stdout
    kernels = [m.group(1) for m in re.finditer(r"^[ih]i +linux-image-([0-9][^ ]*-oracle)$", out, re.M)]
    return sorted(kernels, key=lambda k: [int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", k)])[-1]


def stanza(package):
    out = sh("apt-cache", "show", "--no-all-versions", package).stdout
    return dict(re.findall(r"^(Package|Version|Architecture|Depends): (.*)$", out, re.M))


def build(fields, work):
    tree = os.path.join(work, fields["Package"])
    os.makedirs(os.path.join(tree, "DEBIAN"))
    doc = os.path.join(tree, "usr/share/doc", fields["Package"])
    os.makedirs(doc)
    with open(os.path.join(doc, "STAND-IN"), "w") as handle:
        handle.write("No kernel module: the archive mirror of the oci_gpu.vllm tests answers 404 for this file.\n")
    with open(os.path.join(tree, "DEBIAN/control"), "w") as handle:
        for key in ("Package", "Version", "Architecture", "Depends"):
            handle.write("%s: %s\n" % (key, fields[key]))
        handle.write("Maintainer: oci_gpu.vllm tests <tests@example.invalid>\n")
        handle.write("Description: STAND-IN for Canonical's %s (tests only)\n" % fields["Package"])
    deb = os.path.join(
        REPO, "%s_%s_%s.deb" % (fields["Package"], fields["Version"].replace(":", "%3a"), fields["Architecture"])
    )
    sh("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, deb)
    return deb


def main(branches):
    kernel = newest_kernel()
    os.makedirs(REPO, exist_ok=True)
    report = {"kernel": kernel, "modules": {}}
    with tempfile.TemporaryDirectory() as work:
        for branch in branches:
            package = "linux-modules-nvidia-%s-server-open-%s" % (branch, kernel)
            fields = stanza(package)
            fetched = sh("apt-get", "download", "-q", "%s=%s" % (package, fields["Version"]), check=False)
            stood_in = fetched.returncode != 0
            if stood_in:
                # One step above the real version, so apt (and Ansible's apt module, which asks for name=candidate)
                # takes the stand-in and never the file it cannot fetch; Depends (the driver pin) stay the real ones.
                fields["Version"] += "+standin1"
                build(fields, work)
            report["modules"][branch] = {"package": package, "version": fields["Version"], "stand_in": stood_in}
    index = sh(
        "sh",
        "-c",
        'cd %s && for d in *.deb; do [ -e "$d" ] || continue; dpkg-deb -f "$d"; '
        'echo "Filename: ./$d"; echo "Size: $(stat -c %%s "$d")"; '
        'echo "SHA256: $(sha256sum "$d" | cut -d\' \' -f1)"; echo; done' % REPO,
    ).stdout
    with open(os.path.join(REPO, "Packages"), "w") as handle:
        handle.write(index)
    with open("/etc/apt/sources.list.d/nd-module-seam.list", "w") as handle:
        handle.write("# oci_gpu.vllm tests: STAND-IN precompiled module packages (molecule/nvidia_driver_ubuntu)\n")
        handle.write("deb [trusted=yes] file:%s ./\n" % REPO)
    # The role pins module packages of o=Ubuntu at 1000 (its ubuntu source pin): this local origin ("") goes above it.
    with open("/etc/apt/preferences.d/00-nd-module-seam", "w") as handle:
        handle.write('Package: linux-modules-nvidia-*\nPin: origin ""\nPin-Priority: 1001\n')
    sh(
        "apt-get",
        "update",
        "-q",
        "-o",
        "Dir::Etc::sourcelist=/etc/apt/sources.list.d/nd-module-seam.list",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        "APT::Get::List-Cleanup=0",
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])

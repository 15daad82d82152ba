"""Test fixture (runs on a test host as root): which of Canonical's NVIDIA server branches the archive mirror here can
really deliver today, and stand-ins for the one kind of file it cannot.

The mirror's INDEX is current but its pool lags: on 2026-12-06 the newest uploads answered 404 (580.196.07's driver
packages on jammy and noble; the precompiled module packages of the newest oracle kernels, 7.0.0-1016/1017 and
6.8.0-1067/1068), while 595 and 620 downloaded. Canonical also retires branches by turning their packages into
transitional ones (570 -> 580, 590 -> 595, 615 -> 620 that day). A test that names a branch breaks when either moves,
so this picks, from the host's own apt answers:
- new: the first of PREFERRED (the role's default first) that is a real build and whose user-space files all download;
- old: the next such branch (the NVSwitch host starts on it);
- transitional: a branch whose packages only point to another one (the role must refuse it), and that other branch.
For the chosen branches' precompiled module package of the kernel that boots next, if its file does not download, it
builds a STAND-IN .deb with the real index entry's Package, Architecture and Depends (the driver-version pin) at the
real Version plus "+standin1", in a local flat repository pinned above the archive. A kernel module is the physical
edge a container cannot load anyway; every other driver package comes from the real archive.
    python3 archive_picks.py FABRICMANAGER(0|1)     writes and prints /var/lib/nd-test/picks.json
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

PREFERRED = ["580", "595", "620", "570", "615", "590", "535"]
REPO = "/srv/nd-module-seam"
PICKS = "/var/lib/nd-test/picks.json"


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))


def natural(text):
    return [int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", text)]


def newest_kernel():
    out = sh("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n", "linux-image-*").stdout
    return sorted(re.findall(r"^[ih]i +linux-image-([0-9][^ ]*-oracle)$", out, re.M), key=natural)[-1]


def stanza(spec):
    out = sh("apt-cache", "show", "--no-all-versions", spec, check=False).stdout
    return dict(re.findall(r"^(Package|Version|Architecture|Depends): (.*)$", out, re.M))


def transitional_to(branch):
    depends = stanza("nvidia-headless-no-dkms-%s-server-open" % branch).get("Depends", "")
    others = sorted({b for b in re.findall(r"-([0-9]{3})-server", depends) if b != branch})
    return others[-1] if others else ""


def downloads(uri):
    """The mirror answers a HEAD for it (one retry: a reset or a busy answer is not a missing file)."""
    head = ("curl", "-fsSI", "--max-time", "30", "-o", "/dev/null", uri)
    return any(sh(*head, check=False).returncode == 0 for attempt in range(2))


# At most 8 HEAD requests in flight to the mirror, whichever branch asks.
HEADS = ThreadPoolExecutor(8)


def uris(packages):
    out = sh("apt-get", "install", "-qq", "--print-uris", "--no-install-recommends", *packages, check=False).stdout
    return re.findall(r"^'([^']+)'", out, re.M)


def delivers(branch, fabricmanager):
    """A real build whose user-space files (everything the install would fetch, modules aside) all download."""
    if not stanza("nvidia-headless-no-dkms-%s-server-open" % branch) or transitional_to(branch):
        return False
    wanted = ["nvidia-headless-no-dkms-%s-server-open" % branch, "nvidia-utils-%s-server" % branch]
    if fabricmanager:
        wanted += ["nvidia-fabricmanager-%s" % branch, "libnvidia-nscq-%s" % branch]
    found = uris(wanted)
    return bool(found) and all(HEADS.map(downloads, found))


def build_standin(fields, work):
    fields = dict(fields, Version=fields["Version"] + "+standin1")
    tree = os.path.join(work, fields["Package"])
    doc = os.path.join(tree, "usr/share/doc", fields["Package"])
    os.makedirs(os.path.join(tree, "DEBIAN"))
    os.makedirs(doc)
    with open(os.path.join(doc, "STAND-IN"), "w") as handle:
        handle.write("No kernel module: the archive mirror of the oci_gpu.vllm tests answers 404 for this file.\n")
    with open(os.path.join(tree, "DEBIAN/control"), "w") as handle:
        for key in ("Package", "Version", "Architecture", "Depends"):
            handle.write("%s: %s\n" % (key, fields[key]))
        handle.write("Maintainer: oci_gpu.vllm tests <tests@example.invalid>\n")
        handle.write("Description: STAND-IN for Canonical's %s (tests only)\n" % fields["Package"])
    name = "%s_%s_%s.deb" % (fields["Package"], fields["Version"].replace(":", "%3a"), fields["Architecture"])
    sh("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, os.path.join(REPO, name))


def publish():
    index = sh(
        "sh",
        "-c",
        'cd %s && for d in *.deb; do [ -e "$d" ] || continue; dpkg-deb -f "$d"; echo "Filename: ./$d"; '
        'echo "Size: $(stat -c %%s "$d")"; echo "SHA256: $(sha256sum "$d" | cut -d" " -f1)"; echo; done' % REPO,
    ).stdout
    with open(os.path.join(REPO, "Packages"), "w") as handle:
        handle.write(index)
    with open("/etc/apt/sources.list.d/nd-module-seam.list", "w") as handle:
        handle.write("# oci_gpu.vllm tests: STAND-IN precompiled module packages (molecule/nvidia_driver_ubuntu)\n")
        handle.write("deb [trusted=yes] file:%s ./\n" % REPO)
    # The role pins module packages of o=Ubuntu at 1000 (its ubuntu source pin): this local origin ("") goes above it.
    with open("/etc/apt/preferences.d/00-nd-module-seam", "w") as handle:
        handle.write('Package: linux-modules-nvidia-*\nPin: origin ""\nPin-Priority: 1001\n')
    sh("apt-get", "update", "-q", "-o", "Dir::Etc::sourcelist=/etc/apt/sources.list.d/nd-module-seam.list",
       "-o", "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0")  # fmt: skip


def main(fabricmanager):
    kernel = newest_kernel()
    sh("apt-cache", "policy")  # builds apt's binary cache once, before the branches' apt calls run side by side
    with ThreadPoolExecutor(len(PREFERRED)) as pool:  # each branch's apt answers and HEADs: ~8 s alone, 54 s in a row
        real = [b for b, ok in zip(PREFERRED, pool.map(lambda b: delivers(b, fabricmanager), PREFERRED)) if ok]
    if len(real) < 2:
        sys.exit("archive_picks: fewer than two branches deliverable from this mirror today: %s" % real)
    transitional = next((b for b in PREFERRED if stanza("nvidia-headless-no-dkms-%s-server-open" % b)
                         and transitional_to(b)), "")  # fmt: skip
    picks = {"kernel": kernel, "new": real[0], "old": real[1], "deliverable": real, "transitional": transitional,
             "transitional_to": transitional_to(transitional) if transitional else "", "stand_ins": []}  # fmt: skip
    os.makedirs(REPO, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for branch in (picks["new"], picks["old"]):
            package = "linux-modules-nvidia-%s-server-open-%s" % (branch, kernel)
            fields = stanza(package)
            if fields and not all(downloads(u) for u in uris([package]) if u.rsplit("/", 1)[-1].startswith(package)):
                build_standin(fields, work)
                picks["stand_ins"].append(package)
    publish()
    os.makedirs(os.path.dirname(PICKS), exist_ok=True)
    with open(PICKS, "w") as handle:
        json.dump(picks, handle)
    print(json.dumps(picks))


if __name__ == "__main__":
    main(sys.argv[1:2] == ["1"])

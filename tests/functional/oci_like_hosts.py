"""Test hosts built like OCI's Ubuntu images (tests/hosts/test-host-images.sh), reached the way Ansible reaches OCI:
SSH as `ubuntu` with the test key, sudo for root. See tests/hosts/test-host-files/README.md for what is not like OCI."""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"jammy": "oci-vllm-test/ubuntu:22.04", "noble": "oci-vllm-test/ubuntu:24.04"}


def ssh_key() -> Path:
    """The test key pair (scripts/test-ssh-key.sh makes it once)."""
    out = subprocess.run([str(ROOT / "scripts/test-ssh-key.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def ssh_options(key: Path) -> list[str]:
    options = ("BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR",
               "ConnectTimeout=5")  # fmt: skip
    return ["-i", str(key)] + [word for option in options for word in ("-o", option)]


@dataclass
class TestHost:
    name: str
    suite: str
    ip: str
    key: Path

    def ssh(
        self, command: str, *, user: str = "ubuntu", timeout: int = 120, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a shell command on the host over SSH (as `ubuntu`; prefix `sudo` for root, as on OCI)."""
        argv = ["ssh", *ssh_options(self.key), "%s@%s" % (user, self.ip), command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check, input=stdin)


def start_host(
    name: str, suite: str, key: Path, *, docker_inside: bool = False, mounts: tuple[str, ...] = ()
) -> TestHost:
    """A fresh systemd container from the OCI-like image, with the public key as ubuntu's authorized_keys."""
    subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
    argv = ["docker", "run", "-d", "--name", name, "--hostname", name,
            "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cgroupns=host",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec",
            "-v", "%s.pub:/home/ubuntu/.ssh/authorized_keys:ro" % key]  # fmt: skip
    if docker_inside:
        # An inner dockerd: no seccomp filter, and overlayfs needs volumes (it cannot sit on the host's overlayfs).
        argv += ["--security-opt", "seccomp=unconfined", "-v", "/var/lib/docker", "-v", "/var/lib/containerd"]
    for mount in mounts:
        argv += ["-v", mount]
    subprocess.run([*argv, IMAGES[suite]], capture_output=True, text=True, check=True)
    ip = subprocess.run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    return TestHost(name, suite, ip, key)


def wait_for_ssh(host: TestHost, timeout: float = 90) -> float:
    """Seconds until `ssh ubuntu@host sudo -n true` works (sshd up, key accepted, sudo without password)."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        result = host.ssh("sudo -n true", timeout=10, check=False)
        if result.returncode == 0:
            return time.monotonic() - start
        last = (result.stderr or result.stdout).strip()
        time.sleep(1)
    raise RuntimeError("%s (%s): no SSH as ubuntu with sudo after %d s: %s" % (host.name, host.ip, timeout, last))


def remove_host(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


def docker_bridge_gateway() -> str:
    """The control node's address on Docker's default bridge (docker0): what the test hosts reach it at."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=True)
    return out.stdout.split(" inet ", 1)[1].split("/", 1)[0]


def quote(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)

"""A real container registry for the tests: Debian's `docker-registry` (the CNCF distribution registry 2.8), with TLS
from a test CA and htpasswd (bcrypt) authentication, as OCI Registry or any private registry asks of a host.

The control node's Docker engine pushes the CPU vLLM image into it once per image id (the registry's storage folder is
kept under $OCI_VLLM_CACHE/registry/), so later runs start the registry on the stored blobs and push nothing. Test hosts
pull from it by digest at the docker0 gateway address, trusting the test CA through the role's variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from oci_vllm.plan import load_collection_module
from oci_vllm.project import find_project

CACHE = Path(os.environ.get("OCI_VLLM_CACHE", "/var/tmp/oci-vllm"))
REGISTRY_BIN = "/usr/bin/docker-registry"
REPOSITORY = "vllm/vllm-openai-cpu"
USER = "oci-vllm-test"

CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: false
http:
  addr: {addr}
  tls:
    certificate: {cert}
    key: {key}
auth:
  htpasswd:
    realm: oci-vllm-test
    path: {htpasswd}
"""


@dataclass
class Registry:
    address: str  # host:port, what image references start with
    ca_file: Path
    username: str
    password: str
    storage: Path
    process: subprocess.Popen
    server_cert: Path  # for the registry's address, signed by ca_file: the hub emulator on that address uses it too
    server_key: Path

    def image(self, tag: str) -> str:
        return "%s/%s:%s" % (self.address, REPOSITORY, tag)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _certificates(work: Path, ip: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for `ip` (an IP SAN: hosts reach the registry by address), issued by the
    collection's own CA logic, the one the tls_certificate module runs for the front."""
    tls_ca = load_collection_module(find_project(), "module_utils", "_tls_ca")
    issued = tls_ca.ensure_tls_certificate(
        str(work / "ca"), name="registry", subject_alt_names=[ip], ca_common_name="oci-vllm test registry CA"
    )
    return Path(issued["ca_file"]), Path(issued["cert_file"]), Path(issued["key_file"])


def start_registry(work: Path, ip: str, port: int, local_image: str) -> Registry:
    """Run the registry on ip:port, its storage kept per id of the local image it is to hold (see push_once)."""
    work.mkdir(parents=True, exist_ok=True)
    ca, cert, key = _certificates(work, ip)
    password = os.urandom(12).hex()
    htpasswd = work / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), USER, password], check=True, capture_output=True)
    storage = CACHE / "registry" / _image_id(local_image).split(":")[-1][:12]
    for old in (CACHE / "registry").glob("*") if (CACHE / "registry").exists() else ():
        if old != storage:
            shutil.rmtree(old, ignore_errors=True)  # one image's blobs at a time (GBs)
    storage.mkdir(parents=True, exist_ok=True)
    config = work / "registry.yml"
    config.write_text(CONFIG.format(storage=storage, addr="%s:%d" % (ip, port), cert=cert, key=key, htpasswd=htpasswd))
    log = open(work / "registry.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    registry = Registry("%s:%d" % (ip, port), ca, USER, password, storage, process, cert, key)
    _wait_until_up(registry)
    return registry


def _wait_until_up(registry: Registry, timeout: float = 30) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(registry.ca_file))
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen("https://%s/v2/" % registry.address, context=context, timeout=2)
            return
        except urllib.error.HTTPError as error:
            if error.code == 401:  # up, and asking for credentials as configured
                return
            raise
        except OSError:
            if registry.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start on %s" % registry.address) from None
            time.sleep(0.2)


def push_once(registry: Registry, local_image: str, tag: str) -> str:
    """Push `local_image` (the one start_registry was given) as REPOSITORY:tag unless the stored blobs have it
    already; returns the reference by digest, `address/repo@sha256:...`."""
    digest_file = registry.storage / ("%s.digest" % tag)
    if digest_file.exists():
        return "%s/%s@%s" % (registry.address, REPOSITORY, digest_file.read_text().strip())
    certs = Path("/etc/docker/certs.d") / registry.address  # the control node's engine trusts the test CA
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(registry.ca_file, certs / "ca.crt")
    with tempfile.TemporaryDirectory() as docker_config:  # the login is not left in root's ~/.docker
        env = dict(os.environ, DOCKER_CONFIG=docker_config)
        subprocess.run(["docker", "login", "-u", registry.username, "--password-stdin", registry.address],
                       input=registry.password, text=True, env=env, check=True, capture_output=True)  # fmt: skip
        remote = registry.image(tag)
        subprocess.run(["docker", "tag", local_image, remote], check=True, capture_output=True)
        subprocess.run(["docker", "push", "-q", remote], env=env, check=True, capture_output=True)
        digests = subprocess.run(["docker", "image", "inspect", "-f", "{{range .RepoDigests}}{{println .}}{{end}}",
                                  remote], capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        subprocess.run(["docker", "rmi", remote], check=False, capture_output=True)
    digest = next(d.split("@", 1)[1] for d in digests if d.startswith(registry.address + "/"))
    digest_file.write_text(digest + "\n")
    return "%s/%s@%s" % (registry.address, REPOSITORY, digest)


def _image_id(image: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip

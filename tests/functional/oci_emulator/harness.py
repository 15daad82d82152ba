"""Everything a test or benchmark needs around the emulator: TLS CA and certificate, the test user's API key and OCI
config file, /etc/hosts entries for the emulated endpoints, and the environment for the SDK.

How the real SDK reaches the emulator without code changes: OCI_DEFAULT_REALM=<domain> makes every region name the
SDK does not know resolve to iaas.<region>.<domain> and identity.<region>.oci.<domain>; those names are added to
/etc/hosts (idempotently, marked with a comment; needs root) pointing at a loopback address the emulator listens on
(port 443); REQUESTS_CA_BUNDLE = system bundle + the generated CA.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .fleet import TENANCY
from .server import Emulator

HOSTS_FILE = "/etc/hosts"
HOSTS_MARK = "# oci_gpu.vllm OCI emulator"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
USER = "ocid1.user.oc1..emutestuser"


def endpoint_names(domain: str, regions: list[str]) -> list[str]:
    return [n for r in regions for n in ("iaas.%s.%s" % (r, domain), "identity.%s.oci.%s" % (r, domain))]


def ensure_hosts_entries(names: list[str], address: str, hosts_file: str = HOSTS_FILE) -> None:
    """Append `address name` lines that are missing; never rewrites or removes existing lines."""
    with open(hosts_file, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        present = {tuple(line.split()[:2]) for line in f if line.strip() and not line.startswith("#")}
        missing = [n for n in names if (address, n) not in present]
        if missing:
            f.write("".join("%s %s %s\n" % (address, n, HOSTS_MARK) for n in missing))


def _write_pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def make_tls(workdir: Path, names: list[str]) -> dict[str, str]:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oci_gpu.vllm test CA (OCI emulator)")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    system = Path(SYSTEM_BUNDLE).read_bytes() if Path(SYSTEM_BUNDLE).exists() else b""
    return {
        "ca": _write_pem(workdir / "ca.pem", ca_pem),
        "bundle": _write_pem(workdir / "ca-bundle.pem", system + b"\n" + ca_pem),
        "cert": _write_pem(workdir / "server.pem", cert.public_bytes(serialization.Encoding.PEM)),
        "key": _write_pem(
            workdir / "server-key.pem",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
    }


def make_api_key(workdir: Path, region: str, tenancy: str = TENANCY) -> dict[str, str]:
    """The test user's RSA signing key and an OCI config file (profile DEFAULT) that uses it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = ":".join("%02x" % b for b in hashlib.md5(public_der).digest())
    key_file = _write_pem(
        workdir / "api-key.pem",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
    )
    public_file = _write_pem(
        workdir / "api-key-public.pem",
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    config = workdir / "oci-config"
    config.write_text(
        "[DEFAULT]\nuser=%s\nfingerprint=%s\ntenancy=%s\nregion=%s\nkey_file=%s\n"
        % (USER, fingerprint, tenancy, region, key_file)
    )
    return {"config": str(config), "key": key_file, "public": public_file}


class Harness:
    """An emulator on `address`:443 for `domain`, in this process (threads) or in a child process."""

    def __init__(
        self,
        workdir: Path,
        state: dict[str, Any],
        domain: str,
        address: str,
        latency: float = 0.0,
        page_max: int = 1000,
        subprocess_mode: bool = False,
    ):
        self.workdir = Path(workdir)
        self.state = state
        self.domain = domain
        self.address = address
        self.regions = [r["regionName"] for r in state["regions"]]
        names = endpoint_names(domain, self.regions)
        ensure_hosts_entries(names, address)
        self.tls = make_tls(self.workdir, names)
        self.api_key = make_api_key(self.workdir, self.regions[0], state["tenancy"]["id"])
        self.env = {
            "OCI_DEFAULT_REALM": domain,
            "REQUESTS_CA_BUNDLE": self.tls["bundle"],
            "OCI_CONFIG_FILE": self.api_key["config"],
        }
        self.emulator: Emulator | None = None
        self.process: subprocess.Popen | None = None
        public = Path(self.api_key["public"]).read_bytes()
        if subprocess_mode:
            state_file = self.workdir / "state.json"
            state_file.write_text(json.dumps(state))
            src = str(Path(__file__).resolve().parent.parent)
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oci_emulator.server", "--state", str(state_file), "--domain", domain,
                 "--address", address, "--cert", self.tls["cert"], "--key", self.tls["key"],
                 "--public-key", self.api_key["public"], "--latency", str(latency), "--page-max", str(page_max)],
                cwd=src, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert self.process.stdout is not None
            if self.process.stdout.readline().strip() != "ready":
                raise RuntimeError("emulator process did not start")
        else:
            self.emulator = Emulator(
                state, domain, address, self.tls["cert"], self.tls["key"], public, latency, page_max
            ).start()

    def apply_env(self) -> None:
        os.environ.update(self.env)
        reread_default_realm()

    def admin(self, path: str) -> dict[str, Any]:
        import requests

        url = "https://iaas.%s.%s%s" % (self.regions[0], self.domain, path)
        return requests.get(url, verify=self.tls["bundle"], timeout=10).json()

    def calls(self) -> dict[str, int]:
        if self.emulator is not None:
            with self.emulator.lock:
                return dict(self.emulator.calls)
        return self.admin("/_emulator/stats")["calls"]

    def reset_calls(self) -> None:
        if self.emulator is not None:
            self.emulator.reset_calls()
        else:
            self.admin("/_emulator/reset")

    def close(self) -> None:
        reread_default_realm()
        if self.emulator is not None:
            self.emulator.stop()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def reread_default_realm() -> None:
    """The SDK reads OCI_DEFAULT_REALM once per process (oci.regions caches the source): a test module's emulator
    domain would otherwise stick to the in-process SDK calls of the next module."""
    try:
        import oci
    except ImportError:
        return
    oci.regions._set_source_has_been_read(oci.regions.ExternalSources.SECOND_LEVEL_DOMAIN_FALLBACK, False)


def wait_port(address: str, port: int = 443, timeout: float = 5.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d" % (address, port))

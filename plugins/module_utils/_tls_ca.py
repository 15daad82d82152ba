# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A small private CA on the control node and its per-host server certificates (tls_certificate module logic).

Layout of ca_dir (directories 0700, keys 0600 from their first byte): ca.key, ca.crt, hosts/<name>.key,
hosts/<name>.crt. The CA is created once and never replaced: clients trust it. Host keys are kept; a host certificate
is (re)issued only when it is missing, not from this CA, for other names or another key, or near its end.
Every failure is a TlsCaError; nothing here knows about AnsibleModule, and no key material leaves this file.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import ipaddress
import os
import re
import secrets
import traceback
from typing import Any, Callable, Dict, List, Optional, Union

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: Optional[str] = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

DEFAULT_CA_COMMON_NAME = "oci_gpu.vllm control-node CA"
KEY_MODE, CERT_MODE, DIR_MODE = 0o600, 0o644, 0o700
_NO_ENCIPHER = {"encipher_only": False, "decipher_only": False}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clients whose clock is a little behind
_CN_MAX = 64
Now = Callable[[], datetime.datetime]
San = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]


class TlsCaError(Exception):
    """Base of every failure; `msg` is the whole story (file names, offending values)."""

    @property
    def msg(self) -> str:
        return str(self)


class InvalidArgument(TlsCaError):
    """An option value can never work; raised before any file is touched."""


class CaInconsistent(TlsCaError):
    """ca.key/ca.crt do not belong together, one is missing, or the CA is unusable; never repaired silently."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            "name must be a file stem of 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit, "
            "got %r" % (name,)
        )
    return name


def parse_san(entry: str) -> San:
    """An ipaddress object for an IP literal, else a lower-cased DNS name; InvalidArgument naming the entry."""
    text = entry.strip() if isinstance(entry, str) else ""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    labels = text.lower().split(".")
    wildcard = labels[0] == "*" and len(labels) > 2
    names = labels[1:] if wildcard else labels
    if len(text) > 253 or not all(_LABEL_RE.fullmatch(label) for label in names) or names[-1].isdigit():
        raise InvalidArgument(
            "subject_alt_names entry %r is neither an IPv4/IPv6 address nor a DNS name (letters, digits, hyphens "
            "and dots, optionally starting with '*.')" % (entry,)
        )
    return text.lower()


def parse_sans(entries: Optional[List[str]]) -> List[San]:
    wanted: List[San] = []
    for entry in entries or []:
        san = parse_san(entry)
        if san not in wanted:
            wanted.append(san)
    if not wanted:
        raise InvalidArgument("subject_alt_names must list at least one IP address or DNS name when name is given")
    return wanted


def _positive(option: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument("%s must be a whole number of days of at least %d, got %r" % (option, minimum, value))
    return value


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _not_after(cert: Any) -> datetime.datetime:
    if hasattr(cert, "not_valid_after_utc"):  # cryptography >= 42
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _extension(cert: Any, kind: Any) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _signed_by(cert: Any, ca_cert: Any) -> bool:
    if cert.issuer != ca_cert.subject:
        return False
    aki, ski = _extension(cert, x509.AuthorityKeyIdentifier), _extension(ca_cert, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki.key_identifier != ski.digest:
        return False
    try:
        if hasattr(cert, "verify_directly_issued_by"):  # cryptography >= 40
            cert.verify_directly_issued_by(ca_cert)
            return True
        ca_key = ca_cert.public_key()
        if isinstance(ca_key, rsa.RSAPublicKey):
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        else:
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _cert_sans(cert: Any) -> List[San]:
    names = _extension(cert, x509.SubjectAlternativeName)
    if names is None:
        return []
    ips: List[San] = list(names.get_values_for_type(x509.IPAddress))
    return ips + [name.lower() for name in names.get_values_for_type(x509.DNSName)]


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _load(path: str, data: bytes, loader: Callable[[bytes], Any], what: str) -> Any:
    try:
        return loader(data)
    except (ValueError, TypeError) as exc:
        raise TlsCaError("%s is not a readable PEM %s (%s); fix or remove it" % (path, what, exc)) from exc


def _load_key(data: bytes) -> Any:
    return serialization.load_pem_private_key(data, password=None)


def _pem(obj: Any) -> bytes:
    """PEM of a certificate, or of a private key as unencrypted PKCS#8 (it only ever goes to a 0600 file)."""
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _build_cert(subject: Any, issuer: Any, public_key: Any, now: Any, not_after: Any, extensions: list, signer: Any):
    builder = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
    builder = builder.serial_number(x509.random_serial_number())
    builder = builder.not_valid_before(now - _BACKDATE).not_valid_after(not_after)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def _key_usage(**flags: bool) -> Any:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
    return x509.KeyUsage(**{n: flags.get(n, False) for n in (*names, "key_cert_sign", "crl_sign")}, **_NO_ENCIPHER)


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """Temp file in the same directory, created with `mode` (never wider, whatever the umask), then os.replace."""
    tmp = os.path.join(os.path.dirname(path), ".%s.%s.tmp" % (os.path.basename(path), secrets.token_hex(4)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ControlNodeCa:
    """Ensures the CA in ca_dir and host certificates under it; `changes` lists what was (or would be) done."""

    def __init__(self, ca_dir: str, ca_common_name: str, ca_valid_days: int, check_mode: bool, now: Now) -> None:
        self.ca_dir = os.path.abspath(os.path.expanduser(ca_dir))
        self.ca_key_file, self.ca_file = os.path.join(self.ca_dir, "ca.key"), os.path.join(self.ca_dir, "ca.crt")
        self.ca_common_name, self.ca_valid_days, self.check_mode = ca_common_name, ca_valid_days, check_mode
        self.now = now
        self.changes: List[str] = []
        self.ca_key: Any = None
        self.ca_cert: Any = None

    def _write(self, path: str, data: bytes, mode: int) -> None:
        self.changes.append("write " + path)
        if not self.check_mode:
            write_atomic(path, data, mode)

    def _ensure_dir(self, path: str) -> None:
        if not os.path.isdir(path):
            self.changes.append("create " + path)
            if not self.check_mode:
                os.makedirs(path, DIR_MODE, exist_ok=True)
                os.chmod(path, DIR_MODE)
        self._ensure_mode(path, DIR_MODE)

    def _ensure_mode(self, path: str, mode: int) -> None:
        if os.path.exists(path) and os.stat(path).st_mode & 0o777 != mode:
            self.changes.append("chmod %o %s" % (mode, path))
            if not self.check_mode:
                os.chmod(path, mode)

    def ensure_ca(self) -> None:
        if self.check_mode:
            self._check_ca()
            return
        # Hosts of one play run this in parallel: under the lock one process creates the CA, the others wait and
        # then load it (never half of it).
        self._ensure_dir(self.ca_dir)
        with open(os.path.join(self.ca_dir, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._check_ca()

    def _check_ca(self) -> None:
        key_pem, cert_pem = _read(self.ca_key_file), _read(self.ca_file)
        if key_pem is None and cert_pem is None:
            self._create_ca()
            return
        if key_pem is None or cert_pem is None:
            present, missing = (self.ca_file, self.ca_key_file) if key_pem is None else (self.ca_key_file, self.ca_file)
            raise CaInconsistent(
                "%s exists but %s is missing; restore it (a new CA would break every client that trusts the old "
                "one) or remove both to start a new CA" % (present, missing)
            )
        self.ca_key = _load(self.ca_key_file, key_pem, _load_key, "private key")
        self.ca_cert = _load(self.ca_file, cert_pem, x509.load_pem_x509_certificate, "certificate")
        if _spki(self.ca_key.public_key()) != _spki(self.ca_cert.public_key()):
            raise CaInconsistent(
                "%s and %s do not belong together (their public keys differ)" % (self.ca_key_file, self.ca_file)
            )
        constraints = _extension(self.ca_cert, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise CaInconsistent("%s is not a CA certificate (BasicConstraints CA=true missing)" % self.ca_file)
        if _not_after(self.ca_cert) <= self.now():
            raise CaInconsistent(
                "%s expired on %s; remove %s and %s to start a new CA, then redistribute ca.crt"
                % (self.ca_file, _iso(_not_after(self.ca_cert)), self.ca_key_file, self.ca_file)
            )
        self._ensure_mode(self.ca_key_file, KEY_MODE)

    def _create_ca(self) -> None:
        now = self.now()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.ca_common_name + " " + secrets.token_hex(4))])
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(key_cert_sign=True, crl_sign=True), True),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        ]
        not_after = now + datetime.timedelta(days=self.ca_valid_days)
        cert = _build_cert(name, name, key.public_key(), now, not_after, extensions, key)
        self._ensure_dir(self.ca_dir)
        self._write(self.ca_key_file, _pem(key), KEY_MODE)  # key first: a crash leaves no certificate without key
        self._write(self.ca_file, _pem(cert), CERT_MODE)
        self.ca_key, self.ca_cert = key, cert

    def ca_fingerprint(self) -> Optional[str]:
        """sha256 of ca.crt's DER; None in check mode before the CA exists (its key is not made yet)."""
        if self.check_mode and "write " + self.ca_file in self.changes:
            return None
        return hashlib.sha256(self.ca_cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    def ensure_host(self, name: str, sans: List[San], valid_days: int, renew_before_days: int) -> Dict[str, Any]:
        hosts_dir = os.path.join(self.ca_dir, "hosts")
        key_file, cert_file = os.path.join(hosts_dir, name + ".key"), os.path.join(hosts_dir, name + ".crt")
        self._ensure_dir(hosts_dir)
        key_pem = _read(key_file)
        if key_pem is None:
            key = ec.generate_private_key(ec.SECP256R1())
            self._write(key_file, _pem(key), KEY_MODE)
        else:
            key = _load(key_file, key_pem, _load_key, "private key")
            self._ensure_mode(key_file, KEY_MODE)
        now = self.now()
        not_after = min(now + datetime.timedelta(days=valid_days), _not_after(self.ca_cert))
        cert_pem = _read(cert_file)
        cert, reason = None, "no certificate yet"
        if cert_pem is not None:
            try:
                cert = x509.load_pem_x509_certificate(cert_pem)
            except ValueError:
                reason = "the certificate file is not a readable PEM certificate"
        if cert is not None:
            reason = self._reissue_reason(cert, key, sans, now, not_after, renew_before_days)
        if cert is not None and reason == "valid":
            not_after = _not_after(cert)
        else:
            cert = self._issue(key, sans, now, not_after, name)
            self._write(cert_file, _pem(cert), CERT_MODE)
        issued = reason != "valid"
        return {
            "cert_file": cert_file,
            "key_file": key_file,
            "issued": issued,
            "reason": reason,
            "not_after": _iso(not_after),
        }

    def _reissue_reason(
        self, cert: Any, key: Any, sans: List[San], now: Any, new_not_after: Any, renew_before_days: int
    ) -> str:
        if not _signed_by(cert, self.ca_cert):
            return "not signed by the current CA (%s)" % self.ca_file
        have = _cert_sans(cert)
        if set(have) != set(sans):
            return "subject alternative names differ: has %s, wants %s" % (_san_text(have), _san_text(sans))
        if _spki(cert.public_key()) != _spki(key.public_key()):
            return "the certificate does not match the host key"
        expires = _not_after(cert)
        # A new certificate must outlive the old one, or a CA near its own end would reissue on every run.
        if expires - now <= datetime.timedelta(days=renew_before_days) and new_not_after > expires:
            return "expires %s, within renew_before_days=%d" % (_iso(expires), renew_before_days)
        return "valid"

    def _issue(self, key: Any, sans: List[San], now: Any, not_after: Any, name: str) -> Any:
        first = str(sans[0])
        common_name = first if len(first) <= _CN_MAX else name[:_CN_MAX]
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        entries = [x509.DNSName(s) if isinstance(s, str) else x509.IPAddress(s) for s in sans]
        extensions = [
            (x509.SubjectAlternativeName(entries), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        ]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return _build_cert(subject, self.ca_cert.subject, key.public_key(), now, not_after, extensions, self.ca_key)


def _san_text(sans: List[San]) -> str:
    return "[%s]" % ", ".join(sorted(str(s) for s in sans))


def ensure_tls_certificate(
    ca_dir: str,
    name: Optional[str] = None,
    subject_alt_names: Optional[List[str]] = None,
    valid_days: int = 397,
    renew_before_days: int = 30,
    ca_valid_days: int = 3650,
    ca_common_name: str = DEFAULT_CA_COMMON_NAME,
    check_mode: bool = False,
    now: Now = _utcnow,
) -> Dict[str, Any]:
    """Validate everything, then ensure the CA and (with `name`) the host certificate; the module's result."""
    if not ca_dir:
        raise InvalidArgument("ca_dir must be a directory path, got %r" % (ca_dir,))
    if not isinstance(ca_common_name, str) or not 1 <= len(ca_common_name.strip()) <= _CN_MAX - 9:
        raise InvalidArgument("ca_common_name must be 1-%d characters, got %r" % (_CN_MAX - 9, ca_common_name))
    _positive("ca_valid_days", ca_valid_days)
    _positive("valid_days", valid_days)
    _positive("renew_before_days", renew_before_days, minimum=0)
    if renew_before_days >= valid_days:
        raise InvalidArgument(
            "renew_before_days (%d) must be smaller than valid_days (%d), or every run would reissue"
            % (renew_before_days, valid_days)
        )
    sans: List[San] = []
    if name is not None:
        validate_name(name)
        sans = parse_sans(subject_alt_names)
    elif subject_alt_names:
        raise InvalidArgument("subject_alt_names needs name (the host's file stem), got no name")
    ca = ControlNodeCa(ca_dir, ca_common_name.strip(), ca_valid_days, check_mode, now)
    ca.ensure_ca()
    result: Dict[str, Any] = {"ca_file": ca.ca_file, "issued": False}
    if name is not None:
        result.update(ca.ensure_host(name, sans, valid_days, renew_before_days))
    result["ca_fingerprint"] = ca.ca_fingerprint()
    result["changed"] = bool(ca.changes)
    return result

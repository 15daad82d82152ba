# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""tls_certificate logic on real files in tmp_path: CA kept, host certificates issued and renewed, checked by
cryptography and by the openssl CLI."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
import subprocess

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils._tls_ca import (
    DEFAULT_CA_COMMON_NAME,
    CaInconsistent,
    InvalidArgument,
    TlsCaError,
    _not_after,
    _signed_by,
    ensure_tls_certificate,
    write_atomic,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T0 = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
SANS = ("10.0.0.5", "gpu-a10-1.example.com", "fd00::5")


class Clock:
    """Injected `now`: a fixed UTC moment that tests move forward."""

    def __init__(self, moment=T0):
        self.moment = moment

    def __call__(self):
        return self.moment

    def advance(self, **delta):
        self.moment += datetime.timedelta(**delta)


def ensure(ca_dir, clock=None, **options):
    return ensure_tls_certificate(str(ca_dir), now=clock or Clock(), **options)


def host(ca_dir, clock=None, name="gpu-a10-1", sans=SANS, **options):
    return ensure(ca_dir, clock, name=name, subject_alt_names=None if sans is None else list(sans), **options)


def load_cert(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def assert_issued_by(cert, ca_cert):
    """Raises unless ca_cert's key signed cert (cryptography's own check where this version has it)."""
    assert cert.issuer == ca_cert.subject
    if hasattr(cert, "verify_directly_issued_by"):
        cert.verify_directly_issued_by(ca_cert)
    else:
        ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def san_values(cert, kind):
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(kind)


def not_after(cert):
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def not_before(cert):
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc
    return cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


# -- the CA ------------------------------------------------------------------------------------------------------


def test_ca_is_created_once_then_reused(tmp_path):
    ca_dir = tmp_path / "ca"
    first = ensure(ca_dir)
    assert first["changed"] is True and first["issued"] is False
    assert first["ca_file"] == str(ca_dir / "ca.crt") and os.path.isabs(first["ca_file"])
    assert "cert_file" not in first and "key_file" not in first
    assert mode(ca_dir) == 0o700 and mode(ca_dir / "ca.key") == 0o600
    ca_bytes, key_bytes = read(ca_dir / "ca.crt"), read(ca_dir / "ca.key")

    second = ensure(ca_dir)
    assert second["changed"] is False
    assert second["ca_fingerprint"] == first["ca_fingerprint"]
    assert read(ca_dir / "ca.crt") == ca_bytes and read(ca_dir / "ca.key") == key_bytes


def test_ca_certificate_is_a_p256_ca_with_a_distinguishable_name(tmp_path):
    ensure(tmp_path / "a")
    ensure(tmp_path / "b", ca_common_name="ops CA")
    ca_a, ca_b = load_cert(tmp_path / "a" / "ca.crt"), load_cert(tmp_path / "b" / "ca.crt")
    cn_a = ca_a.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cn_b = ca_b.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn_a.startswith(DEFAULT_CA_COMMON_NAME + " ") and len(cn_a) > len(DEFAULT_CA_COMMON_NAME) + 4
    assert cn_b.startswith("ops CA ")
    assert ensure(tmp_path / "c")["ca_fingerprint"] != ensure(tmp_path / "a")["ca_fingerprint"]
    assert isinstance(ca_a.public_key(), ec.EllipticCurvePublicKey) and ca_a.public_key().curve.name == "secp256r1"
    constraints = ca_a.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca_a.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    ca_a.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert_issued_by(ca_a, ca_a)


def test_ca_key_and_certificate_that_do_not_match_fail_naming_both_files(tmp_path):
    ensure(tmp_path / "a")
    ensure(tmp_path / "b")
    shutil.copy(tmp_path / "b" / "ca.key", tmp_path / "a" / "ca.key")
    before = read(tmp_path / "a" / "ca.crt")
    with pytest.raises(CaInconsistent) as failure:
        host(tmp_path / "a")
    assert str(tmp_path / "a" / "ca.key") in failure.value.msg and str(tmp_path / "a" / "ca.crt") in failure.value.msg
    assert read(tmp_path / "a" / "ca.crt") == before
    assert not (tmp_path / "a" / "hosts").exists()


@pytest.mark.parametrize("removed, kept", [("ca.crt", "ca.key"), ("ca.key", "ca.crt")])
def test_half_a_ca_fails_naming_the_missing_file_and_is_not_regenerated(tmp_path, removed, kept):
    ensure(tmp_path)
    os.unlink(tmp_path / removed)
    kept_bytes = read(tmp_path / kept)
    with pytest.raises(CaInconsistent) as failure:
        ensure(tmp_path)
    assert "%s exists but %s is missing" % (tmp_path / kept, tmp_path / removed) in failure.value.msg
    assert not (tmp_path / removed).exists() and read(tmp_path / kept) == kept_bytes


def test_expired_ca_fails_instead_of_issuing(tmp_path):
    clock = Clock()
    ensure(tmp_path, clock, ca_valid_days=10)
    clock.advance(days=11)
    with pytest.raises(CaInconsistent, match="expired"):
        host(tmp_path, clock)


# -- host certificates -------------------------------------------------------------------------------------------


def test_host_certificate_is_issued_then_kept(tmp_path):
    clock = Clock()
    first = host(tmp_path, clock)
    assert first["changed"] is True and first["issued"] is True and first["reason"] == "no certificate yet"
    assert first["cert_file"] == str(tmp_path / "hosts" / "gpu-a10-1.crt")
    assert first["key_file"] == str(tmp_path / "hosts" / "gpu-a10-1.key")
    assert first["not_after"] == "2026-04-02T12:00:00Z"  # T0 + 397 days
    cert_bytes = read(first["cert_file"])

    clock.advance(days=100)
    second = host(tmp_path, clock, sans=list(reversed(SANS)))  # order does not matter
    assert second["changed"] is False and second["issued"] is False and second["reason"] == "valid"
    assert second["not_after"] == first["not_after"] and second["ca_fingerprint"] == first["ca_fingerprint"]
    assert read(first["cert_file"]) == cert_bytes


def test_issued_certificate_verifies_against_the_ca_and_is_a_server_certificate(tmp_path):
    result = host(tmp_path)
    cert, ca_cert = load_cert(result["cert_file"]), load_cert(result["ca_file"])
    assert_issued_by(cert, ca_cert)
    assert sorted(str(ip) for ip in san_values(cert, x509.IPAddress)) == ["10.0.0.5", "fd00::5"]
    assert san_values(cert, x509.DNSName) == ["gpu-a10-1.example.com"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "10.0.0.5"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not_before(cert) == T0 - datetime.timedelta(minutes=5)
    assert not_after(cert) == T0 + datetime.timedelta(days=397)
    key = serialization.load_pem_private_key(read(result["key_file"]), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert spki(key.public_key()) == spki(cert.public_key())
    assert cert.serial_number != load_cert(host(tmp_path, name="other")["cert_file"]).serial_number


def test_key_files_are_0600_even_with_an_open_umask_and_results_hold_no_key(tmp_path):
    old_umask = os.umask(0)
    try:
        result = host(tmp_path / "ca")
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "ca" / "ca.key") == 0o600 and mode(result["key_file"]) == 0o600
    assert mode(tmp_path / "ca") == 0o700 and mode(tmp_path / "ca" / "hosts") == 0o700
    assert mode(result["cert_file"]) == 0o644 and mode(result["ca_file"]) == 0o644
    assert "PRIVATE KEY" not in json.dumps(result)
    assert [p for p in os.listdir(tmp_path / "ca" / "hosts") if p.endswith(".tmp")] == []


def test_files_get_their_mode_from_creation_whatever_the_umask(tmp_path, monkeypatch):
    seen = []
    real_fchmod = os.fchmod

    def spy(fd, mode_):  # the mode the file already had while still empty and unnamed
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode_)

    monkeypatch.setattr(os, "fchmod", spy)
    old_umask = os.umask(0)
    try:
        write_atomic(str(tmp_path / "k"), b"secret", 0o600)
    finally:
        os.umask(0o077)
    try:
        write_atomic(str(tmp_path / "c"), b"public", 0o644)
    finally:
        os.umask(old_umask)
    assert seen[0] == 0o600 and mode(tmp_path / "k") == 0o600
    assert mode(tmp_path / "c") == 0o644  # widened past the umask on purpose: certificates are public
    assert sorted(os.listdir(tmp_path)) == ["c", "k"]


def test_loose_mode_of_an_existing_key_is_tightened(tmp_path):
    result = host(tmp_path)
    os.chmod(result["key_file"], 0o644)
    again = host(tmp_path)
    assert again["changed"] is True and again["issued"] is False
    assert mode(result["key_file"]) == 0o600


def test_changed_names_reissue_with_the_same_key(tmp_path):
    first = host(tmp_path)
    key_bytes, old_cert = read(first["key_file"]), load_cert(first["cert_file"])
    second = host(tmp_path, sans=[*SANS, "vllm.example.com"])
    assert second["changed"] is True and second["issued"] is True
    assert "subject alternative names differ" in second["reason"] and "vllm.example.com" in second["reason"]
    new_cert = load_cert(second["cert_file"])
    assert read(first["key_file"]) == key_bytes
    assert spki(new_cert.public_key()) == spki(old_cert.public_key())
    assert "vllm.example.com" in san_values(new_cert, x509.DNSName)


def test_certificate_expiring_within_the_renewal_window_is_reissued(tmp_path):
    clock = Clock()
    first = host(tmp_path, clock, valid_days=100, renew_before_days=20)
    clock.advance(days=79)  # 21 days left: still kept
    assert host(tmp_path, clock, valid_days=100, renew_before_days=20)["issued"] is False
    clock.advance(days=2)  # 19 days left; the new one runs 100 days from now (T0 + 81 days)
    renewed = host(tmp_path, clock, valid_days=100, renew_before_days=20)
    assert renewed["issued"] is True and renewed["changed"] is True
    assert renewed["reason"].startswith("expires 2025-06-09T12:00:00Z, within renew_before_days=20")
    assert renewed["not_after"] == "2025-08-29T12:00:00Z" and renewed["not_after"] != first["not_after"]


def test_host_certificate_is_capped_at_the_ca_end_without_reissuing_every_run(tmp_path):
    clock = Clock()
    first = host(tmp_path, clock, ca_valid_days=10)
    assert first["not_after"] == "2025-03-11T12:00:00Z"
    clock.advance(days=1)
    assert host(tmp_path, clock)["changed"] is False


def test_certificate_of_another_ca_is_reissued(tmp_path):
    foreign = host(tmp_path / "foreign")
    ensure(tmp_path / "ours")
    os.makedirs(tmp_path / "ours" / "hosts", mode=0o700)
    shutil.copy(foreign["key_file"], tmp_path / "ours" / "hosts")
    shutil.copy(foreign["cert_file"], tmp_path / "ours" / "hosts")
    result = host(tmp_path / "ours")
    assert result["issued"] is True and result["reason"].startswith("not signed by the current CA")
    assert_issued_by(load_cert(result["cert_file"]), load_cert(result["ca_file"]))
    assert host(tmp_path / "ours")["changed"] is False


def test_certificate_with_our_ca_name_but_a_forged_signature_is_reissued(tmp_path):
    first = host(tmp_path)
    ca_cert, key = load_cert(first["ca_file"]), serialization.load_pem_private_key(read(first["key_file"]), None)
    old = load_cert(first["cert_file"])
    rogue = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca_cert.subject)  # same issuer name, no AKI: only the signature tells
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + datetime.timedelta(days=300))
        .add_extension(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
    )
    with open(first["cert_file"], "wb") as handle:
        handle.write(builder.sign(rogue, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    result = host(tmp_path)
    assert result["issued"] is True and result["reason"].startswith("not signed by the current CA")
    assert_issued_by(load_cert(result["cert_file"]), ca_cert)


def test_certificate_for_another_key_and_garbage_certificate_are_reissued(tmp_path):
    first = host(tmp_path)
    os.unlink(first["key_file"])
    swapped = host(tmp_path)
    assert swapped["issued"] is True and swapped["reason"] == "the certificate does not match the host key"
    with open(first["cert_file"], "wb") as handle:
        handle.write(b"not a certificate\n")
    garbage = host(tmp_path)
    assert garbage["issued"] is True and "not a readable PEM certificate" in garbage["reason"]


def test_unreadable_host_key_fails_naming_it_and_is_kept(tmp_path):
    first = host(tmp_path)
    with open(first["key_file"], "wb") as handle:
        handle.write(b"garbage")
    with pytest.raises(TlsCaError) as failure:
        host(tmp_path)
    assert first["key_file"] in failure.value.msg
    assert read(first["key_file"]) == b"garbage"


class OldCryptographyCert:
    """A certificate as cryptography < 40 / < 42 shows it: no verify_directly_issued_by, no *_utc properties."""

    _MISSING = ("verify_directly_issued_by", "not_valid_after_utc", "not_valid_before_utc")

    def __init__(self, cert, **overrides):
        self._cert = cert
        self._overrides = overrides

    def __getattr__(self, attr):
        if attr in self._overrides:
            return self._overrides[attr]
        if attr in self._MISSING:
            raise AttributeError(attr)
        if attr == "not_valid_after":  # naive UTC, as old versions return it
            return not_after(self._cert).replace(tzinfo=None)
        return getattr(self._cert, attr)


def test_fallbacks_for_older_cryptography_check_signature_and_expiry(tmp_path):
    result = host(tmp_path)
    foreign = ensure(tmp_path / "foreign")
    cert = OldCryptographyCert(load_cert(result["cert_file"]))
    assert not hasattr(cert, "verify_directly_issued_by")
    assert _signed_by(cert, load_cert(result["ca_file"])) is True
    assert _signed_by(cert, load_cert(foreign["ca_file"])) is False
    ours = load_cert(result["ca_file"])
    impostor = OldCryptographyCert(load_cert(foreign["ca_file"]), subject=ours.subject, extensions=x509.Extensions([]))
    assert _signed_by(cert, impostor) is False  # same name, no key id to compare: the signature check decides
    assert _not_after(cert) == T0 + datetime.timedelta(days=397)


# -- check mode --------------------------------------------------------------------------------------------------


def test_check_mode_on_an_empty_directory_reports_everything_and_writes_nothing(tmp_path):
    result = host(tmp_path / "ca", check_mode=True)
    assert result["changed"] is True and result["issued"] is True and result["ca_fingerprint"] is None
    assert not (tmp_path / "ca").exists()


def test_check_mode_predicts_reissue_and_no_change_without_writing(tmp_path):
    first = host(tmp_path)
    cert_bytes = read(first["cert_file"])
    kept = host(tmp_path, check_mode=True)
    assert kept["changed"] is False and kept["ca_fingerprint"] == first["ca_fingerprint"]
    would = host(tmp_path, sans=["10.0.0.9"], check_mode=True)
    assert would["changed"] is True and would["issued"] is True and "10.0.0.9" in would["reason"]
    assert read(first["cert_file"]) == cert_bytes
    os.unlink(first["key_file"])
    assert host(tmp_path, check_mode=True)["changed"] is True
    assert not os.path.exists(first["key_file"])


# -- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "-gpu", ".hidden", "a/b", "../up", "a" * 129, "gpu 1", "gpu1\n"])
def test_bad_name_fails_naming_it_before_touching_anything(tmp_path, name):
    with pytest.raises(InvalidArgument) as failure:
        host(tmp_path / "ca", name=name)
    assert repr(name) in failure.value.msg and "letters, digits" in failure.value.msg
    assert not (tmp_path / "ca").exists()


BAD_SANS = ["", "bad_host", "*.", "*", "*.com", "a..b", "-a.example", "a-.example", "x.", "10.0.0.256", "host:8000"]


@pytest.mark.parametrize("entry", BAD_SANS)
def test_bad_subject_alt_name_fails_naming_it(tmp_path, entry):
    with pytest.raises(InvalidArgument) as failure:
        host(tmp_path / "ca", sans=["10.0.0.1", entry])
    assert repr(entry) in failure.value.msg and "IPv4/IPv6 address nor a DNS name" in failure.value.msg
    assert not (tmp_path / "ca").exists()


def test_good_subject_alt_names_are_normalised(tmp_path):
    result = host(tmp_path, sans=["*.Example.COM", "0:0::1", "::1", "gpu-1", "192.168.1.10"])
    cert = load_cert(result["cert_file"])
    assert san_values(cert, x509.DNSName) == ["*.example.com", "gpu-1"]
    assert sorted(str(ip) for ip in san_values(cert, x509.IPAddress)) == ["192.168.1.10", "::1"]


@pytest.mark.parametrize("sans", [None, []])
def test_name_without_subject_alt_names_fails(tmp_path, sans):
    with pytest.raises(InvalidArgument, match="subject_alt_names must list at least one"):
        host(tmp_path, sans=sans)


def test_subject_alt_names_without_name_fail(tmp_path):
    with pytest.raises(InvalidArgument, match="subject_alt_names needs name"):
        ensure(tmp_path, subject_alt_names=["10.0.0.1"])


@pytest.mark.parametrize(
    "option, value",
    [("valid_days", 0), ("valid_days", -5), ("ca_valid_days", 0), ("renew_before_days", -1), ("valid_days", True)],
)
def test_bad_day_counts_fail_naming_option_and_value(tmp_path, option, value):
    with pytest.raises(InvalidArgument) as failure:
        host(tmp_path / "ca", **{option: value})
    assert failure.value.msg.startswith(option + " must be a whole number of days") and repr(value) in failure.value.msg
    assert not (tmp_path / "ca").exists()


def test_renewal_window_as_long_as_the_lifetime_fails(tmp_path):
    with pytest.raises(InvalidArgument, match=r"renew_before_days \(30\) must be smaller than valid_days \(30\)"):
        host(tmp_path, valid_days=30)


@pytest.mark.parametrize("common_name", ["", "   ", "x" * 56])
def test_bad_ca_common_name_fails_naming_it(tmp_path, common_name):
    with pytest.raises(InvalidArgument) as failure:
        ensure(tmp_path / "ca", ca_common_name=common_name)
    assert repr(common_name) in failure.value.msg


# -- the openssl CLI agrees --------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not on PATH")
def test_openssl_verifies_the_host_certificate_against_the_ca(tmp_path):
    # the real clock: openssl checks validity against the current time
    result = ensure_tls_certificate(str(tmp_path), name="gpu-a10-1", subject_alt_names=list(SANS))
    verified = subprocess.run(
        ["openssl", "verify", "-purpose", "sslserver", "-CAfile", result["ca_file"], result["cert_file"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip() == "%s: OK" % result["cert_file"]
    foreign = ensure_tls_certificate(str(tmp_path / "foreign"))
    rejected = subprocess.run(
        ["openssl", "verify", "-CAfile", foreign["ca_file"], result["cert_file"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rejected.returncode != 0


def _issue_in_child(args):
    ca_dir, name = args
    return ensure_tls_certificate(ca_dir, name=name, subject_alt_names=[name])["ca_fingerprint"]


def test_hosts_issued_in_parallel_share_one_ca(tmp_path):
    # The role issues every host's certificate at once (one process per host): exactly one CA may come out of it.
    import multiprocessing

    ca_dir = str(tmp_path / "ca")
    with multiprocessing.get_context("fork").Pool(6) as pool:
        fingerprints = pool.map(_issue_in_child, [(ca_dir, "host%d.example" % i) for i in range(12)])
    assert len(set(fingerprints)) == 1
    assert ensure_tls_certificate(ca_dir)["ca_fingerprint"] == fingerprints[0]

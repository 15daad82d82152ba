"""oci_vllm.api.Client: no API key over plain HTTP off the loopback, certificates verified with the endpoint's CA."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from oci_vllm import api
from oci_vllm.errors import BadInput, EndpointUnreachable


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://gpu-host.example:8000", "http://[2001:db8::1]:8000"])
def test_key_over_plain_http_to_a_network_address_is_refused(url):
    with pytest.raises(BadInput, match=r"plain HTTP.*https://"):
        api.Client(url, api_key="k" * 20)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"])
def test_key_over_plain_http_to_the_loopback_is_allowed(url):
    assert api.Client(url, api_key="k" * 20).context is None


def test_plain_http_without_a_key_is_allowed():
    assert api.Client("http://10.0.0.5:8000").api_key == ""


def test_an_unreadable_ca_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match=r"not-there\.pem"):
        api.Client("https://10.0.0.5:8000", ca_file=str(tmp_path / "not-there.pem"))


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    """A loopback HTTPS server whose self-signed certificate names 127.0.0.1 (openssl from the machine)."""
    work = tmp_path_factory.mktemp("tls")
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "m"}], "auth": self.headers.get("Authorization", "")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "https://127.0.0.1:%d" % server.server_address[1], cert
    server.shutdown()


def test_https_with_the_endpoint_ca_verifies_and_sends_the_key(https_server):
    url, cert = https_server
    client = api.Client(url, api_key="secret-key-0123456789", ca_file=str(cert))
    assert client.models() == ["m"]
    assert client._request("GET", "/v1/models")["auth"] == "Bearer secret-key-0123456789"


def test_https_without_the_ca_is_not_trusted_and_says_what_to_give(https_server):
    url, _cert = https_server
    with pytest.raises(EndpointUnreachable, match=r"certificate not trusted.*--ca-file"):
        api.Client(url, api_key="secret-key-0123456789").models()


def test_cli_parser_takes_ca_file():
    from oci_vllm import cli

    args = cli.build_parser().parse_args(["models", "--url", "https://h:8000", "--ca-file", str(Path("/x/ca.crt"))])
    assert args.ca_file == "/x/ca.crt"

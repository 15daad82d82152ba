"""HTTPS server answering the OCI identity and core (compute, virtual network) calls the inventory uses, and the
launch/terminate side the gpu_instances module uses (compute.py).

Faithful where the SDK can tell: camelCase JSON bodies, `limit`/`page` query parameters with the `opc-next-page`
header, `opc-request-id`, error bodies `{"code", "message"}` (404 NotAuthorizedOrNotFound for an inaccessible
compartment, 429 TooManyRequests when throttling is injected), and RSA request signatures verified against the
test user's public key: every request must sign (request-target), host and date; a request with a body must also sign
content-type, content-length and x-content-sha256, and the hash must be the body's. Emulated latency is added to every
request. Admin paths `/_emulator/*` read and reset counters.

Run standalone (used by the benchmark so the server gets its own process):
  python -m oci_emulator.server --state fleet.json --domain D --address A --cert C --key K --public-key P --latency S
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from .compute import ComputeWrites
from .compute import ServiceError as ApiError

API = "/20160918"
SIGNED_ALWAYS = {"(request-target)", "host", "date"}
SIGNED_WITH_BODY = {"content-type", "content-length", "x-content-sha256"}


class Emulator:
    def __init__(
        self,
        state: dict[str, Any],
        domain: str,
        address: str,
        certfile: str,
        keyfile: str,
        public_key_pem: bytes | None = None,
        latency: float = 0.0,
        page_max: int = 1000,
        port: int = 443,
    ):
        self.state = state
        self.domain = domain
        self.latency = latency
        self.page_max = page_max
        self.calls: Counter = Counter()
        self.throttles: dict[str, int] = {}
        self.lock = threading.Lock()
        self.public_key: Any = serialization.load_pem_public_key(public_key_pem) if public_key_pem else None
        self.bad_signatures = 0
        self.methods: Counter = Counter()  # HTTP method -> requests that reached an operation
        self.compute = ComputeWrites(state, self.lock)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------------------------
    def start(self) -> Emulator:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="oci-emulator", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def throttle(self, operation: str, count: int) -> None:
        """The next `count` calls of `operation` (e.g. ListInstances) answer 429 TooManyRequests."""
        with self.lock:
            self.throttles[operation] = count

    def reset_calls(self) -> None:
        with self.lock:
            self.calls.clear()
            self.methods.clear()

    def total_calls(self) -> int:
        with self.lock:
            return sum(self.calls.values())

    # --- helpers -----------------------------------------------------------------------------------------------
    def check_compartment(self, cid: str | None) -> None:
        if not cid:
            raise ApiError(400, "MissingParameter", "Missing compartmentId")
        if cid in self.state["inaccessible"]:
            raise ApiError(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")

    def page(self, items: list[Any], query: dict[str, str]) -> tuple[list[Any], str | None]:
        limit = int(query.get("limit") or 100)
        if limit < 1:
            raise ApiError(400, "InvalidParameter", "limit must be >= 1")
        limit = min(limit, self.page_max)
        start = 0
        if query.get("page"):
            try:
                start = int(base64.urlsafe_b64decode(query["page"]).decode().split(":")[1])
            except (ValueError, IndexError) as exc:
                raise ApiError(400, "InvalidParameter", "Invalid page token") from exc
        chunk = items[start : start + limit]
        following = start + limit
        token = (
            base64.urlsafe_b64encode(("offset:%d" % following).encode()).decode() if following < len(items) else None
        )
        return chunk, token

    def verify_signature(self, handler: BaseHTTPRequestHandler, body: bytes | None = None) -> None:
        if self.public_key is None:
            return
        header = handler.headers.get("authorization") or ""
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
        if not header.startswith("Signature ") or "signature" not in fields or fields.get("algorithm") != "rsa-sha256":
            raise ApiError(401, "NotAuthenticated", "Missing or malformed Authorization header")
        signed = fields.get("headers", "").split()
        required = SIGNED_ALWAYS | (SIGNED_WITH_BODY if body is not None else set())
        if not required <= set(signed):
            raise ApiError(401, "NotAuthenticated", "headers not signed: " + ", ".join(sorted(required - set(signed))))
        if body is not None:
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if handler.headers.get("x-content-sha256") != digest or handler.headers.get("content-length") != str(
                len(body)
            ):
                with self.lock:
                    self.bad_signatures += 1
                raise ApiError(401, "NotAuthenticated", "x-content-sha256 or content-length does not match the body")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append("(request-target): %s %s" % (handler.command.lower(), handler.path))
            else:
                lines.append("%s: %s" % (name, handler.headers.get(name, "")))
        try:
            self.public_key.verify(
                base64.b64decode(fields["signature"]),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError) as exc:
            with self.lock:
                self.bad_signatures += 1
            raise ApiError(
                401,
                "NotAuthenticated",
                "The required information to complete authentication was not provided or was incorrect.",
            ) from exc

    # --- routing -----------------------------------------------------------------------------------------------
    @staticmethod
    def write_operation(method: str, path: str) -> str | None:
        """The operation of a POST/DELETE (known before it runs, so throttling refuses it without doing it)."""
        if method == "POST" and path == API + "/instances":
            return "LaunchInstance"
        if method == "DELETE" and re.fullmatch(API + r"/instances/[^/]+", path):
            return "TerminateInstance"
        return None

    def route(
        self, host: str, path: str, query: dict[str, str], method: str = "GET", body: Any = None
    ) -> tuple[str, Any, str | None]:
        """(operation name, JSON body, next page token)."""
        host = host.split(":")[0]
        if host.endswith(".oci." + self.domain) and host.startswith("identity."):
            return self.identity(host[len("identity.") : -len(".oci." + self.domain)], path, query)
        if host.startswith("iaas.") and host.endswith("." + self.domain):
            region = host[len("iaas.") : -len("." + self.domain)]
            if region not in self.state["instances"]:
                raise ApiError(404, "NotFound", "unknown region " + region)
            if method != "GET":
                return self.core_write(region, method, path, query, body)
            return self.core(region, path, query)
        raise ApiError(404, "NotFound", "unknown host " + host)

    def core_write(
        self, region: str, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[str, Any, None]:
        operation = self.write_operation(method, path)
        if operation == "LaunchInstance":
            self.check_compartment((body or {}).get("compartmentId") if isinstance(body, dict) else None)
            return operation, self.compute.launch(region, body), None
        if operation == "TerminateInstance":
            preserve = query.get("preserveBootVolume", "false") == "true"
            self.compute.terminate(region, path.rsplit("/", 1)[1], preserve)
            return operation, None, None
        raise ApiError(404, "NotFound", "no such core path %s %s" % (method, path))

    def identity(self, region: str, path: str, query: dict[str, str]) -> tuple[str, Any, str | None]:
        tenancy = self.state["tenancy"]
        comps = self.state["compartments"]
        if path == "%s/tenancies/%s/regionSubscriptions" % (API, tenancy["id"]):
            return "ListRegionSubscriptions", self.state["regions"], None
        if path == "%s/tenancies/%s" % (API, tenancy["id"]):
            return "GetTenancy", tenancy, None
        if path == API + "/availabilityDomains":
            self.check_compartment(query.get("compartmentId"))
            return (
                "ListAvailabilityDomains",
                self.compute.list_availability_domains(region, query["compartmentId"]),
                None,
            )
        if path == API + "/compartments":
            parent = query.get("compartmentId")
            if parent != tenancy["id"]:
                self.check_compartment(parent)
            subtree = query.get("compartmentIdInSubtree", "false") == "true"
            if subtree and parent != tenancy["id"]:
                raise ApiError(400, "InvalidParameter", "compartmentIdInSubtree is only valid on the tenancy")
            found = [c for c in comps if subtree or c["compartmentId"] == parent]
            if query.get("lifecycleState"):
                found = [c for c in found if c["lifecycleState"] == query["lifecycleState"]]
            chunk, token = self.page(found, query)
            return "ListCompartments", chunk, token
        match = re.fullmatch(API + r"/compartments/([^/]+)", path)
        if match:
            self.check_compartment(match.group(1))
            for c in comps:
                if c["id"] == match.group(1):
                    return "GetCompartment", c, None
            raise ApiError(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
        raise ApiError(404, "NotFound", "no such identity path " + path)

    def core(self, region: str, path: str, query: dict[str, str]) -> tuple[str, Any, str | None]:
        st = self.state
        if path == API + "/instances":
            self.check_compartment(query.get("compartmentId"))
            found = [i for i in st["instances"][region] if i["compartmentId"] == query["compartmentId"]]
            for param, field in (("lifecycleState", "lifecycleState"), ("availabilityDomain", "availabilityDomain")):
                if query.get(param):
                    found = [i for i in found if i[field] == query[param]]
            chunk, token = self.page(found, query)
            return "ListInstances", chunk, token
        if path == API + "/vnicAttachments":
            self.check_compartment(query.get("compartmentId"))
            found = [a for a in st["vnicAttachments"][region] if a["compartmentId"] == query["compartmentId"]]
            if query.get("instanceId"):
                found = [a for a in found if a["instanceId"] == query["instanceId"]]
            chunk, token = self.page(found, query)
            return "ListVnicAttachments", chunk, token
        if path == API + "/privateIps":
            if query.get("subnetId"):
                found = [p for p in st["privateIps"][region] if p["subnetId"] == query["subnetId"]]
            elif query.get("vnicId"):
                found = [p for p in st["privateIps"][region] if p["vnicId"] == query["vnicId"]]
            else:
                raise ApiError(400, "MissingParameter", "subnetId or vnicId is required")
            chunk, token = self.page(found, query)
            return "ListPrivateIps", chunk, token
        if path == API + "/publicIps":
            self.check_compartment(query.get("compartmentId"))
            scope = query.get("scope")
            if scope not in ("REGION", "AVAILABILITY_DOMAIN"):
                raise ApiError(400, "InvalidParameter", "scope must be REGION or AVAILABILITY_DOMAIN")
            if (scope == "AVAILABILITY_DOMAIN") != bool(query.get("availabilityDomain")):
                raise ApiError(
                    400, "InvalidParameter", "availabilityDomain is required exactly when scope is AVAILABILITY_DOMAIN"
                )
            found = [
                p
                for p in st["publicIps"][region]
                if p["compartmentId"] == query["compartmentId"]
                and p["scope"] == scope
                and (not query.get("lifetime") or p["lifetime"] == query["lifetime"])
                and (scope == "REGION" or p["availabilityDomain"] == query["availabilityDomain"])
            ]
            chunk, token = self.page(found, query)
            return "ListPublicIps", chunk, token
        if path == API + "/images":
            self.check_compartment(query.get("compartmentId"))
            chunk, token = self.page(self.compute.list_images(region, query), query)
            return "ListImages", chunk, token
        if path == API + "/subnets":
            self.check_compartment(query.get("compartmentId"))
            found = [
                {k: v for k, v in s.items() if not k.startswith("_")}
                for s in st["subnets"][region]
                if s["compartmentId"] == query["compartmentId"]
            ]
            chunk, token = self.page(found, query)
            return "ListSubnets", chunk, token
        match = re.fullmatch(API + r"/(instances|vnics)/([^/]+)", path)
        if match:
            kind, rid = match.groups()
            if kind == "vnics" and rid in st["vnics"][region]:
                return "GetVnic", st["vnics"][region][rid], None
            for inst in st["instances"][region] if kind == "instances" else []:
                if inst["id"] == rid:
                    self.compute.advance(inst, region)
                    return "GetInstance", inst, None
            raise ApiError(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
        raise ApiError(404, "NotFound", "no such core path " + path)

    def admin(self, path: str) -> Any:
        with self.lock:
            if path == "/_emulator/stats":
                return {"calls": dict(self.calls), "bad_signatures": self.bad_signatures, "methods": dict(self.methods)}
            if path == "/_emulator/reset":
                self.calls.clear()
                self.methods.clear()
                return {"calls": {}}
        raise ApiError(404, "NotFound", path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator: Emulator

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle + delayed ACK add ~40 ms per response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.serve("GET")

    def do_POST(self) -> None:
        self.serve("POST")

    def do_DELETE(self) -> None:
        self.serve("DELETE")

    def _throttled(self, operation: str) -> bool:
        emu = self.emulator
        with emu.lock:
            emu.calls[operation] += 1
            emu.methods[self.command] += 1
            throttled = emu.throttles.get(operation, 0) > 0
            if throttled:
                emu.throttles[operation] -= 1
        return throttled

    def serve(self, method: str) -> None:
        emu = self.emulator
        request_id = self.headers.get("opc-request-id") or uuid.uuid4().hex
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        headers = {"opc-request-id": request_id}
        operation = "Unknown"
        raw = self.rfile.read(int(self.headers.get("content-length") or 0)) if method == "POST" else None
        try:
            if split.path.startswith("/_emulator/"):
                body, status = emu.admin(split.path), 200
            elif method == "GET":
                if emu.latency:
                    time.sleep(emu.latency)
                emu.verify_signature(self)
                operation, body, token = emu.route(self.headers.get("host", ""), split.path, query)
                if self._throttled(operation):
                    raise ApiError(429, "TooManyRequests", "Too many requests for the tenant")
                status = 200
                if token:
                    headers["opc-next-page"] = token
            else:
                if emu.latency:
                    time.sleep(emu.latency)
                emu.verify_signature(self, raw)
                known = emu.write_operation(method, split.path)
                if known is None:
                    raise ApiError(404, "NotFound", "no such path %s %s" % (method, split.path))
                operation = known
                if self._throttled(operation):  # refused before it runs: a throttled launch creates nothing
                    raise ApiError(429, "TooManyRequests", "Too many requests for the tenant")
                try:
                    data = json.loads(raw) if raw else None
                except ValueError as exc:
                    raise ApiError(400, "InvalidParameter", "body is not JSON") from exc
                operation, body, _token = emu.route(self.headers.get("host", ""), split.path, query, method, data)
                status = 200 if body is not None else 204
                if body is not None:
                    headers["etag"] = uuid.uuid4().hex
                    headers["opc-work-request-id"] = "ocid1.coreservicesworkrequest.oc1..emu" + request_id[:12]
        except ApiError as err:
            if err.status != 429 and operation == "Unknown":
                with emu.lock:
                    emu.calls["Error%d" % err.status] += 1
            status, body = err.status, {"code": err.code, "message": err.message}
        if status == 204:
            self.send_response(204)
            self.send_header("Date", formatdate(usegmt=True))
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Date", formatdate(usegmt=True))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--public-key")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--page-max", type=int, default=1000)
    args = parser.parse_args()
    with open(args.state) as f:
        state = json.load(f)
    public = Path(args.public_key).read_bytes() if args.public_key else None
    emulator = Emulator(state, args.domain, args.address, args.cert, args.key, public, args.latency, args.page_max)
    print("ready", flush=True)
    emulator.httpd.serve_forever()


if __name__ == "__main__":
    main()

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""One TLS context per CA bundle for the OCI SDK's HTTPS sessions, instead of one per new connection.

The SDK's vendored requests (2.27 in oci 2.189) gives every connection pool the CA bundle's path, and urllib3 loads
that file into a fresh SSL context for each new connection: 75 ms of CPU per connection on this project's test
machine (the system bundle), and a cold inventory opens one connection per call in flight and per endpoint, 15 to 20
of them. Loading the bundle once and handing the pools the loaded context (`ssl_context` in their connection
arguments) keeps the same checks: the same bundle, certificates required, host names matched.

Only done where it can be done exactly: when the pool was given a CA file and no CA directory and takes connection
arguments; otherwise the SDK's own behaviour is left in place.
"""

from __future__ import annotations

import threading
from typing import Any, Dict

_contexts: Dict[str, Any] = {}
_lock = threading.Lock()


def _context_for(bundle: str) -> Any:
    with _lock:
        context = _contexts.get(bundle)
        if context is None:
            import ssl

            from urllib3.util.ssl_ import create_urllib3_context

            context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            context.load_verify_locations(cafile=bundle)
            _contexts[bundle] = context
        return context


def share_tls_context(session: Any) -> bool:
    """Make the session's HTTPS adapter give its pools one loaded context per CA bundle. False if not possible."""
    try:
        adapter = session.get_adapter("https://")
    except Exception:  # a session shaped otherwise keeps the SDK's behaviour
        return False
    original = getattr(adapter, "cert_verify", None)
    if original is None or getattr(original, "_oci_gpu_shared_tls", False):
        return original is not None

    def cert_verify(conn: Any, url: str, verify: Any, cert: Any) -> None:
        original(conn, url, verify, cert)
        bundle = getattr(conn, "ca_certs", None)
        if (
            verify
            and isinstance(bundle, str)
            and not getattr(conn, "ca_cert_dir", None)
            and isinstance(getattr(conn, "conn_kw", None), dict)
            and getattr(conn, "cert_reqs", None) == "CERT_REQUIRED"
        ):
            conn.conn_kw["ssl_context"] = _context_for(bundle)
            conn.ca_certs = None  # already in the context: urllib3 would load the file again per connection

    cert_verify._oci_gpu_shared_tls = True  # type: ignore[attr-defined]
    adapter.cert_verify = cert_verify
    return True

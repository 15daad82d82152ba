"""Runs ON a test host (standard library only, Python 3.8+), sent over SSH on stdin with its configuration appended
as `main(json.loads(...))`, so the API key never appears in a process's arguments. It calls another host's endpoint once
per (path, method, with/without key) and prints one JSON line: [{path, method, key, status | error}, ...].

Configuration: base (https://host:port), ca_pem (the CA that verifies it), key, calls ([[path, method, use_key]]),
body (JSON for POST/PUT/PATCH), and optional plain (http://host:port/...: one plain-HTTP call with the key) and
untrusted (one HTTPS call verified with the system's CAs only)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import tempfile
import urllib.error
import urllib.request


def _call(url, method, key, body, context, timeout=60.0):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = json.dumps(body).encode() if method in ("POST", "PUT", "PATCH") else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return {"status": response.status, "body": response.read(300).decode("utf-8", "replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read(300).decode("utf-8", "replace")}
    except (urllib.error.URLError, OSError, socket.timeout, http.client.HTTPException) as exc:
        return {"error": "%s: %s" % (type(getattr(exc, "reason", exc)).__name__, getattr(exc, "reason", exc))}


def main(config):
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as ca:
        ca.write(config["ca_pem"])
    trusted = ssl.create_default_context(cafile=ca.name)
    results = []
    for path, method, use_key in config["calls"]:
        answer = _call(config["base"] + path, method, config["key"] if use_key else None, config["body"], trusted)
        results.append(dict(answer, path=path, method=method, key=use_key))
    if config.get("plain"):
        answer = _call(config["plain"], "POST", config["key"], config["body"], None)
        results.append(dict(answer, path=config["plain"], method="POST", key=True, kind="plain"))
    if config.get("untrusted"):
        answer = _call(config["untrusted"], "GET", None, None, ssl.create_default_context())
        results.append(dict(answer, path=config["untrusted"], method="GET", key=False, kind="untrusted"))
    print(json.dumps(results))

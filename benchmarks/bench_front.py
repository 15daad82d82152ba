# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Cost of the vllm_server role's TLS front (nginx) vs calling vLLM straight, on the same machine.

Front: https://127.0.0.1:8000 (nginx: TLS, the API key checked, proxied to vLLM over a keep-alive upstream; --front
also takes http://, to try the script against a stand-in). Direct: http://127.0.0.1:8001 (vLLM itself on the
loopback). Both get the same requests with the same key, from this process, in alternating order each round (front
first in even rounds, direct first in odd ones) to cancel drift; figures are medians over the rounds.

(a) latency: sequential requests on ONE persistent keep-alive connection per side, GET /v1/models (cheap: the proxy
    hop dominates the difference) and POST /v1/completions with max_tokens=1 (a real generation); p50/p90/p99 and the
    p50 difference front - direct. Target: under 1 ms.
    Also, not part of the target: a NEW connection per request (TLS handshake on the front) for /v1/models.
(b) throughput: C threads, each with its own keep-alive connection, POST /v1/completions max_tokens=1 (and a light
    GET /v1/models run) for S seconds; requests/s per side and the ratio front / direct. Target: at least 95%.

Every answer must be 200: non-200 answers and errors are counted and printed, and a run with any is labelled
INVALID. Prints figures, ratios and PASS/MISS against the targets; exits 0 either way (asserts nothing about wall
time). The key is read from a file and only sent in the Authorization header.
Usage: .venv/bin/python benchmarks/bench_front.py [--front URL] [--direct URL] [--ca FILE] [--api-key-file FILE]
       [--model ID] [--requests N] [--concurrency C] [--duration S] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

CACHE = os.environ.get("OCI_VLLM_CACHE") or "/var/tmp/oci-vllm"
DEFAULT_CA = os.path.join(CACHE, "demo", "control-node", "ca", "ca.crt")
DEFAULT_KEY_FILE = os.path.join(CACHE, "demo", "control-node", "api_key")
LATENCY_TARGET_MS = 1.0
THROUGHPUT_TARGET = 0.95
WARMUP = 5
TIMEOUT = 60.0


class Side:
    """One way to reach vLLM (the front or direct): makes connections and sends one request on a given one."""

    def __init__(self, name: str, url: str, key: str, ca: Optional[str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SystemExit("%s: %r is not an http:// or https:// URL" % (name, url))
        self.name = name
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        self.context: Optional[ssl.SSLContext] = None
        if self.tls:
            if ca and not os.path.isfile(ca):
                raise SystemExit("%s: CA file %s not found (--ca)" % (name, ca))
            self.context = ssl.create_default_context(cafile=ca or None)

    def connect(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)

    def send(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: Optional[bytes]
    ) -> Tuple[int, bytes]:
        conn.request(method, self.prefix + path, body=body, headers=self.headers)
        resp = conn.getresponse()
        return resp.status, resp.read()  # read it all, or the connection cannot be reused


class Tally:
    """Non-200 answers, errors and broken keep-alives of one run."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.sample = ""  # the first non-200 body, cut short
        self.reconnects = 0
        self.lock = threading.Lock()

    def bad_status(self, status: int, body: bytes) -> None:
        with self.lock:
            self.statuses[status] += 1
            if not self.sample:
                self.sample = body[:200].decode("utf-8", "replace")

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.errors["%s: %s" % (type(exc).__name__, str(exc)[:120])] += 1

    def merge(self, other: Tally) -> None:
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.sample = self.sample or other.sample
        self.reconnects += other.reconnects

    @property
    def bad(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def describe(self) -> str:
        parts = ["HTTP %d x%d" % item for item in sorted(self.statuses.items())]
        parts += ["%s x%d" % item for item in sorted(self.errors.items())]
        text = ", ".join(parts)
        if self.sample:
            text += "; first non-200 body: %r" % self.sample
        return text


class Client:
    """One connection of one side, kept alive across requests; notices when the server closed it in between."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.conn = side.connect()
        self.fresh = True  # no request yet, or the last one failed (we closed the connection ourselves)

    def call(self, method: str, path: str, body: Optional[bytes], tally: Tally) -> Optional[int]:
        """One request; its time in ns when the answer was 200, else None (counted in tally)."""
        if not self.fresh and self.conn.sock is None:
            tally.reconnects += 1  # the server closed the keep-alive connection: http.client opens a new one, timed
        self.fresh = True
        start = time.perf_counter_ns()
        try:
            status, data = self.side.send(self.conn, method, path, body)
        except (OSError, http.client.HTTPException) as exc:
            tally.error(exc)
            self.conn.close()
            return None
        elapsed = time.perf_counter_ns() - start
        self.fresh = False
        if status != 200:
            tally.bad_status(status, data)
            return None
        return elapsed

    def close(self) -> None:
        self.conn.close()


def percentiles(ns: List[int]) -> Tuple[float, float, float]:
    if len(ns) < 2:
        value = ns[0] / 1e6 if ns else float("nan")
        return value, value, value
    q = statistics.quantiles([v / 1e6 for v in ns], n=100, method="inclusive")
    return q[49], q[89], q[98]


def latency_run(
    side: Side, method: str, path: str, body: Optional[bytes], n: int, keep_alive: bool
) -> Tuple[List[int], Tally]:
    """n sequential requests; one keep-alive connection, or (keep_alive=False) a new connection for each."""
    warmup = Tally()  # not counted: a problem there shows again in the run proper
    client = Client(side)
    for _i in range(WARMUP):
        client.call(method, path, body, warmup)
    tally = Tally()
    times: List[int] = []
    for _i in range(n):
        if not keep_alive:
            client.close()
            client = Client(side)
        elapsed = client.call(method, path, body, tally)
        if elapsed is not None:
            times.append(elapsed)
    client.close()
    return times, tally


def throughput_run(
    side: Side, method: str, path: str, body: Optional[bytes], threads: int, duration: float
) -> Tuple[float, Tally]:
    """threads workers, each with its own keep-alive connection, for duration seconds; (requests/s of 200s, tally)."""
    tally = Tally()
    done = [0] * threads
    barrier = threading.Barrier(threads + 1, timeout=TIMEOUT)
    stop = threading.Event()

    def worker(index: int) -> None:
        own = Tally()
        client = Client(side)
        try:
            for _i in range(2):  # connect (and handshake) before the clock starts
                client.call(method, path, body, Tally())
            barrier.wait()
            while not stop.is_set():
                if client.call(method, path, body, own) is not None:
                    done[index] += 1
        finally:
            client.close()
            with tally.lock:
                tally.merge(own)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(duration)
    stop.set()
    counted = sum(done)  # 200s finished within the window; the requests in flight at its end are not counted
    elapsed = time.perf_counter() - start
    for thread in workers:
        thread.join(TIMEOUT)
    return counted / elapsed, tally


def verdict(ok: bool, tallies: List[Tally]) -> str:
    bad = sum(t.bad for t in tallies)
    if bad:
        return "INVALID (%d non-200/errors)" % bad
    return "PASS" if ok else "MISS"


def report_problems(label: str, tallies: Dict[str, Tally]) -> None:
    for name, tally in tallies.items():
        if tally.bad:
            print("      %s %s: %s" % (label, name, tally.describe()))
        if tally.reconnects:
            print(
                "      %s %s: keep-alive closed by the server %d times (those requests paid a new connection)"
                % (label, name, tally.reconnects)
            )


def ordered(sides: List[Side], rnd: int) -> List[Side]:
    return sides if rnd % 2 == 0 else sides[::-1]


def bench_latency(sides: List[Side], calls: Dict[str, Tuple[str, str, Optional[bytes]]], n: int, rounds: int) -> None:
    print(
        "\n(a) latency: %d sequential requests per side and round, one keep-alive connection; %d rounds" % (n, rounds)
    )
    for label, (method, path, body) in calls.items():
        per_round: Dict[str, List[Tuple[float, float, float]]] = {s.name: [] for s in sides}
        tallies = {s.name: Tally() for s in sides}
        for rnd in range(rounds):
            for side in ordered(sides, rnd):
                times, tally = latency_run(side, method, path, body, n, keep_alive=True)
                per_round[side.name].append(percentiles(times))
                tallies[side.name].merge(tally)
        for side in sides:
            p50, p90, p99 = (statistics.median(r[i] for r in per_round[side.name]) for i in range(3))
            print("  %-22s %-6s p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms" % (label, side.name, p50, p90, p99))
        diffs = [f[0] - d[0] for f, d in zip(per_round["front"], per_round["direct"])]
        diff = statistics.median(diffs)
        print(
            "  %-22s p50 overhead front - direct: %+7.3f ms (rounds: %s)  target < %.0f ms: %s"
            % (
                label,
                diff,
                " ".join("%+.3f" % d for d in diffs),
                LATENCY_TARGET_MS,
                verdict(diff < LATENCY_TARGET_MS, list(tallies.values())),
            )
        )
        report_problems(label, tallies)


def bench_handshake(sides: List[Side], n: int, rounds: int) -> None:
    print("\n    new connection per request (clients without keep-alive), GET /v1/models; not part of the target")
    per_round: Dict[str, List[float]] = {s.name: [] for s in sides}
    tallies = {s.name: Tally() for s in sides}
    for rnd in range(rounds):
        for side in ordered(sides, rnd):
            times, tally = latency_run(side, "GET", "/v1/models", None, n, keep_alive=False)
            per_round[side.name].append(percentiles(times)[0])
            tallies[side.name].merge(tally)
    front, direct = (statistics.median(per_round[name]) for name in ("front", "direct"))
    bad = sum(t.bad for t in tallies.values())
    print(
        "  %-22s new conn p50: front %7.3f ms (%s)  direct %7.3f ms (%s)  difference %+7.3f ms%s"
        % (
            "GET /v1/models",
            front,
            "TLS" if sides[0].tls else "no TLS",
            direct,
            "TLS" if sides[1].tls else "no TLS",
            front - direct,
            "  INVALID (%d non-200/errors)" % bad if bad else "",
        )
    )
    report_problems("new-conn", tallies)


def bench_throughput(
    sides: List[Side], calls: Dict[str, Tuple[str, str, Optional[bytes]]], threads: int, duration: float, rounds: int
) -> None:
    print(
        "\n(b) throughput: %d threads, each its own keep-alive connection, %g s per side and round; %d rounds"
        % (threads, duration, rounds)
    )
    for label, (method, path, body) in calls.items():
        per_round: Dict[str, List[float]] = {s.name: [] for s in sides}
        tallies = {s.name: Tally() for s in sides}
        for rnd in range(rounds):
            for side in ordered(sides, rnd):
                rate, tally = throughput_run(side, method, path, body, threads, duration)
                per_round[side.name].append(rate)
                tallies[side.name].merge(tally)
        for side in sides:
            print(
                "  %-22s %-6s %8.1f req/s (rounds: %s)"
                % (
                    label,
                    side.name,
                    statistics.median(per_round[side.name]),
                    " ".join("%.1f" % r for r in per_round[side.name]),
                )
            )
        ratios = [f / d if d else float("nan") for f, d in zip(per_round["front"], per_round["direct"])]
        ratio = statistics.median(ratios)
        print(
            "  %-22s ratio front / direct: %6.1f%%  target >= %.0f%%: %s"
            % (label, 100 * ratio, 100 * THROUGHPUT_TARGET, verdict(ratio >= THROUGHPUT_TARGET, list(tallies.values())))
        )
        report_problems(label, tallies)


def preflight(sides: List[Side], calls: Dict[str, Tuple[str, str, Optional[bytes]]]) -> None:
    """One request of each kind on each side before timing anything: a setup problem stops here, not as INVALID."""
    failed = []
    for side in sides:
        for label, (method, path, body) in calls.items():
            tally = Tally()
            client = Client(side)
            if client.call(method, path, body, tally) is None:
                failed.append("  %s %s: %s" % (side.name, label, tally.describe()))
            client.close()
    if failed:
        print("\n".join(failed), file=sys.stderr)
        raise SystemExit("preflight: not every request answered 200; nothing measured")


def first_model(sides: List[Side]) -> str:
    for side in sides:
        conn = side.connect()
        try:
            status, data = side.send(conn, "GET", "/v1/models", None)
            if status == 200:
                return str(json.loads(data)["data"][0]["id"])
            print("  %s: GET /v1/models answered %d" % (side.name, status), file=sys.stderr)
        except (OSError, http.client.HTTPException, ValueError, LookupError) as exc:
            print("  %s: GET /v1/models failed: %s" % (side.name, exc), file=sys.stderr)
        finally:
            conn.close()
    raise SystemExit("no model id from either side; is the deployment up? (or give --model)")


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", default="https://127.0.0.1:8000", help="the front (https://, or http:// to test)")
    parser.add_argument("--direct", default="http://127.0.0.1:8001", help="vLLM itself")
    parser.add_argument("--ca", default=DEFAULT_CA, help="CA that verifies the front's certificate")
    parser.add_argument("--api-key-file", default=DEFAULT_KEY_FILE, help="file holding the API key")
    parser.add_argument("--model", help="model id (default: the first from GET /v1/models)")
    parser.add_argument("--requests", type=positive(int), default=300, help="latency requests per side and round")
    parser.add_argument("--concurrency", type=positive(int), default=4, help="throughput threads")
    parser.add_argument("--duration", type=positive(float), default=10.0, help="seconds per throughput run")
    parser.add_argument("--rounds", type=positive(int), default=3, help="rounds, alternating front/direct order")
    args = parser.parse_args()

    try:
        key = Path(args.api_key_file).read_text().strip()
    except OSError as exc:
        raise SystemExit("cannot read the API key file: %s" % exc) from None
    if not key:
        raise SystemExit("the API key file %s is empty" % args.api_key_file)
    front = Side("front", args.front, key, args.ca)
    direct = Side("direct", args.direct, key, args.ca)
    sides = [front, direct]
    model = args.model or first_model(sides)
    completion = json.dumps({"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0}).encode()
    calls: Dict[str, Tuple[str, str, Optional[bytes]]] = {
        "GET /v1/models": ("GET", "/v1/models", None),
        "POST /v1/completions": ("POST", "/v1/completions", completion),
    }
    preflight(sides, calls)
    print(
        "front benchmark (python %s, %d CPUs): front %s%s, direct %s, model %s"
        % (
            sys.version.split()[0],
            os.cpu_count() or 0,
            front.url,
            " (CA %s)" % args.ca if front.tls else "",
            direct.url,
            model,
        )
    )
    bench_latency(sides, calls, int(args.requests), int(args.rounds))
    bench_handshake(sides, int(args.requests), int(args.rounds))
    # The completions run is the target; the light /v1/models run shows the proxy's own ceiling.
    bench_throughput(
        sides, dict(reversed(list(calls.items()))), int(args.concurrency), float(args.duration), int(args.rounds)
    )


if __name__ == "__main__":
    main()

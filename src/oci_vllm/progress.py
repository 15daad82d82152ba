"""Live progress of a playbook run, one line per task start and per host result, from ansible-runner events."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "FAILED",
    "runner_on_unreachable": "UNREACHABLE",
    "runner_on_skipped": "skipped",
}


def _short(text: Any, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Progress:
    """Called with each ansible-runner event (through the runner's collector, which decides what runner keeps).
    Writes to `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, show_skipped: bool = False, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.show_skipped = show_skipped
        self.enabled = enabled
        self.started = time.monotonic()
        self.host_width = 16
        self._task_printed = ""
        self._pending_task = ""

    def _write(self, line: str) -> None:
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._write(f"{self._elapsed()} PLAY {data.get('name') or data.get('play', '')}")
        elif kind == "playbook_on_task_start":
            # Printed with the first result, so tasks that are skipped everywhere stay quiet unless asked.
            self._pending_task = data.get("name") or data.get("task", "")
        elif kind in _RESULT_EVENTS:
            self._result(kind, data)
        elif kind == "runner_retry":
            self._task_line()
            host = data.get("host", "")
            self._write(
                f"{'':8} {host:<{self.host_width}} retry {data.get('retries', '?')}/{data.get('attempts', '?')}"
            )
        elif kind == "playbook_on_stats":
            self._recap(data)
        return True

    def _task_line(self) -> None:
        if self._pending_task and self._pending_task != self._task_printed:
            self._write(f"{self._elapsed()} TASK {self._pending_task}")
            self._task_printed = self._pending_task

    def _result(self, kind: str, data: dict[str, Any]) -> None:
        label = _RESULT_EVENTS[kind]
        res = data.get("res") or {}
        if kind == "runner_on_skipped" and not self.show_skipped:
            return
        if kind == "runner_on_ok" and res.get("changed"):
            label = "changed"
        if kind == "runner_on_failed" and data.get("ignore_errors"):
            label = "failed (ignored)"
        self._task_line()
        detail = ""
        if kind in ("runner_on_failed", "runner_on_unreachable"):
            detail = _short(res.get("msg", ""))
        elif data.get("task_action") in ("debug", "ansible.builtin.debug") and "msg" in res:
            detail = _short(res["msg"])
        host = data.get("host", "")
        self._write(f"{'':8} {host:<{self.host_width}} {label}{('  ' + detail) if detail else ''}")

    def _recap(self, data: dict[str, Any]) -> None:
        hosts = sorted(set().union(*(data.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped"))))
        self._write(f"{self._elapsed()} RECAP")
        for host in hosts:
            counts = " ".join(
                f"{name}={(data.get(key) or {}).get(host, 0)}"
                for name, key in (
                    ("ok", "ok"),
                    ("changed", "changed"),
                    ("failed", "failures"),
                    ("unreachable", "dark"),
                    ("skipped", "skipped"),
                )
            )
            self._write(f"{'':8} {host:<{self.host_width}} {counts}")

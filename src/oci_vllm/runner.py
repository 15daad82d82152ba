"""Run a playbook through ansible-runner: fresh private data dir, no env files, events to a handler."""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import pexpect

from .errors import ExitCode
from .project import Project
from .secrets import Secrets, scrubbed_environ, secret_vars_file

EventHandler = Callable[[dict[str, Any]], bool]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextmanager
def runner_context(project: Project, prefix: str, keep: bool = False) -> Iterator[dict[str, Any]]:
    """The arguments every ansible-runner call here shares: a fresh private data dir (removed afterwards unless kept),
    this checkout's project dir and Ansible environment, no env files, no output of its own. Secret-looking
    variables are out of os.environ meanwhile: ansible-runner records the environment."""
    private_data_dir = tempfile.mkdtemp(prefix=prefix)
    try:
        with scrubbed_environ():
            yield {
                "private_data_dir": private_data_dir,
                "project_dir": str(project.root),
                "envvars": project.ansible_env(),
                "suppress_env_files": True,
                "quiet": True,
            }
    finally:
        if not keep:
            shutil.rmtree(private_data_dir, ignore_errors=True)


def ansible_error(text: str) -> str:
    """The lines of Ansible's output that say what went wrong: [ERROR] and the first failed-to-parse warning."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    first_parse = next((line for line in lines if line.startswith("[WARNING]: Failed to parse")), "")
    errors = [line for line in lines if line.startswith(("[ERROR]", "ERROR!"))]
    return " | ".join([x for x in [first_parse, *errors] if x])[:1200]


@dataclass
class RunResult:
    status: str  # ansible-runner status: successful, failed, timeout, canceled
    rc: int
    stats: dict[str, dict[str, int]] | None
    failures: list[dict[str, str]] = field(default_factory=list)  # host, task, msg
    # host -> the vllm_server role's status (the play's custom stats `oci_vllm_status`, set by its status entry point)
    reported: dict[str, dict[str, Any]] = field(default_factory=dict)
    # host -> what its validation refused (custom stats `oci_vllm_invalid`, set by site.yml's validation play)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    private_data_dir: str | None = None  # set when kept
    # every custom stat of the run by name (global ones, e.g. provision.yml's `oci_vllm_provision`)
    custom_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return classify(self.status, self.rc, self.stats, bool(self.invalid))

    def hosts(self) -> list[str]:
        if not self.stats:
            return []
        return sorted(set().union(*(self.stats.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped"))))

    def host_state(self, host: str) -> str:
        stats = self.stats or {}
        if host in (stats.get("dark") or {}):
            return "unreachable"
        if host in (stats.get("failures") or {}):
            return "failed"
        return "ok"


def classify(status: str, rc: int, stats: dict[str, dict[str, int]] | None, invalid: bool = False) -> ExitCode:
    """Unreachable beats bad input beats failed beats a run-level error; success needs a clean status and rc."""
    stats = stats or {}
    if stats.get("dark"):
        return ExitCode.UNREACHABLE
    if invalid:
        return ExitCode.BAD_INPUT
    if stats.get("failures"):
        return ExitCode.HOSTS_FAILED
    if status == "successful" and rc == 0:
        return ExitCode.OK
    return ExitCode.ERROR


# The stable contract between the plays and the CLI: custom stats (ansible.builtin.set_stats) under these names.
STATUS_STATS = "oci_vllm_status"
INVALID_STATS = "oci_vllm_invalid"


class _Collector:
    """Keeps what the CLI reports: failure messages and the plays' custom stats (not task display names).

    Its answer tells ansible-runner whether to write the event to the artifacts: only the final stats (where
    `result.stats` reads them) unless the artifacts are kept for a person to read. Writing every event cost ~0.1 s
    of CPU per 50-task play in this process (bench_wrapper.py), and each file is one more copy of the play's data.
    """

    def __init__(self, forward: EventHandler | None, keep_all: bool = False) -> None:
        self.forward = forward
        self.keep_all = keep_all
        self.failures: list[dict[str, str]] = []
        self.reported: dict[str, dict[str, Any]] = {}
        self.invalid: dict[str, list[str]] = {}
        self.custom_stats: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            self.failures.append(
                {
                    "host": str(data.get("host", "")),
                    "task": str(data.get("task", "")),
                    "kind": "unreachable" if kind == "runner_on_unreachable" else "failed",
                    "msg": str(res.get("msg", "")),
                }
            )
        if kind == "playbook_on_stats":
            artifact = data.get("artifact_data") or {}
            self.custom_stats.update(artifact)
            status = artifact.get(STATUS_STATS) or {}
            self.reported.update({str(host): info for host, info in status.items() if isinstance(info, dict)})
            invalid = artifact.get(INVALID_STATS) or {}
            self.invalid.update({str(host): [str(m) for m in msgs] for host, msgs in invalid.items() if msgs})
        if self.forward is not None:
            self.forward(event)
        return self.keep_all or kind == "playbook_on_stats"


@contextmanager
def _reads_without_delay() -> Iterator[None]:
    """ansible-runner reads the play's output through pexpect, which sleeps after every read (`delayafterread`,
    0.1 ms asked, ~0.6 ms slept here: 0.16 s over a 50-task play, measured by bench_wrapper.py) to let output pile up
    for pattern matching; runner only matches password prompts, and we never answer any. The sleep is set per spawned
    child, so runs started inside this block get none; pexpect's other delays (after close, to reap the child) stay."""
    original = pexpect.spawn

    class _Spawn(original):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.delayafterread = None

    pexpect.spawn = _Spawn
    try:
        yield
    finally:
        pexpect.spawn = original


def build_cmdline(extra_vars: Iterable[str], secrets_file: str | None, check: bool, tags: str | None = None) -> str:
    args: list[str] = []
    for item in extra_vars:
        args += ["-e", item]
    if secrets_file:
        args += ["-e", "@" + secrets_file]
    if check:
        args += ["--check", "--diff"]
    if tags:
        args += ["--tags", tags]
    return shlex.join(args)


def run_playbook(
    project: Project,
    playbook: Path,
    *,
    inventory: str | None = None,
    limit: str | None = None,
    extra_vars: Iterable[str] = (),
    secrets: Secrets | None = None,
    check: bool = False,
    verbosity: int = 0,
    event_handler: EventHandler | None = None,
    keep_artifacts: bool = False,
    runner_kwargs: dict[str, Any] | None = None,
) -> RunResult:
    collector = _Collector(event_handler, keep_all=keep_artifacts)
    context = runner_context(project, "oci-vllm-run-", keep=keep_artifacts)
    with secret_vars_file(secrets or Secrets()) as secrets_file, context as common, _reads_without_delay():
        result = ansible_runner.run(
            playbook=str(playbook),
            inventory=inventory,
            limit=limit,
            cmdline=build_cmdline(extra_vars, secrets_file, check),
            verbosity=verbosity or None,
            event_handler=collector,
            **common,
            **(runner_kwargs or {}),
        )
        if result.stats is None and result.status != "successful":
            # No play ran (inventory or playbook error): Ansible said why on its output only.
            with result.stdout as out, result.stderr as err:
                why = ansible_error(out.read() + "\n" + err.read())
            collector.failures.append({"host": "", "task": "", "kind": "error", "msg": why or f"rc={result.rc}"})
        # Still inside: runner reads the stats from the private data dir, which is removed on leaving.
        return RunResult(
            status=str(result.status),
            rc=int(result.rc if result.rc is not None else 1),
            stats=result.stats,
            failures=collector.failures,
            reported=collector.reported,
            invalid=collector.invalid,
            custom_stats=collector.custom_stats,
            private_data_dir=common["private_data_dir"] if keep_artifacts else None,
        )

"""Exit codes of `oci-vllm` and the errors that map to them."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented in `oci-vllm --help` and the README."""

    OK = 0
    ERROR = 1  # the run itself failed (playbook error, ansible-runner problem) with no host to blame
    HOSTS_FAILED = 2  # at least one host failed a task, or an endpoint answered with an HTTP error
    UNREACHABLE = 3  # at least one host (or the endpoint) could not be reached
    BAD_INPUT = 4  # bad arguments or values; nothing was run
    INTERRUPTED = 130


EXIT_CODES_HELP = """exit codes:
  0    success
  1    the run failed without a failed host to blame (playbook error, ansible-runner problem)
  2    at least one host failed a task, or the endpoint answered with an HTTP error
  3    at least one host or the endpoint was unreachable (takes precedence over 2)
  4    bad input (arguments, files, values, or a role's validation on any host): nothing was changed
  130  interrupted"""


class OciVllmError(Exception):
    """An error with a message for the user and the exit code it means."""

    exit_code = ExitCode.ERROR

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInput(OciVllmError):
    exit_code = ExitCode.BAD_INPUT


class EndpointUnreachable(OciVllmError):
    exit_code = ExitCode.UNREACHABLE


class EndpointError(OciVllmError):
    exit_code = ExitCode.HOSTS_FAILED

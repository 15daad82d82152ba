"""Overhead of the oci-vllm wrapper (ansible-runner + event handler + progress display) against plain
`ansible-playbook` running the same play.

Two plays, localhost, local connection, no facts, N tasks each (default 50):
  debug     `ansible.builtin.debug` tasks: Ansible's own work per task is tiny, so every per-event cost shows (the
            worst case for any wrapper);
  command   `ansible.builtin.command: /bin/true` tasks: a module runs per task, as in real plays (which also add SSH).
Per repetition, in alternating order:
  baseline  `ansible-playbook -i localhost, play.yml` as a subprocess, output to /dev/null (default callback)
  wrapper   oci_vllm.runner.run_playbook(...) in this process, with the live Progress display writing to /dev/null:
            fresh private data dir, suppress_env_files, runner's event callback, events read, cleanup.
  callback  the baseline command with ansible-runner's event callback (awx_display) as stdout callback and no
            runner around it: the part of the overhead paid inside ansible-playbook, which no wrapper over
            ansible-runner avoids.
Also timed: `oci-vllm --version` (the console script's start-up, paid once per command).

Prints medians and the ratio wrapper / baseline; asserts nothing about wall time.
Usage: .venv/bin/python benchmarks/bench_wrapper.py [--tasks 50] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from oci_vllm.progress import Progress  # noqa: E402
from oci_vllm.project import Project  # noqa: E402
from oci_vllm.runner import run_playbook  # noqa: E402

BIN = Path(sys.executable).parent


def write_play(directory: Path, tasks: int, kind: str = "debug") -> Path:
    lines = ["---", "- name: Bench", "  hosts: localhost", "  connection: local", "  gather_facts: false"]
    lines += ["  vars:", '    ansible_python_interpreter: "{{ ansible_playbook_python }}"', "  tasks:"]
    for i in range(tasks):
        lines.append(f"    - name: Task {i}")
        if kind == "debug":
            lines += ["      ansible.builtin.debug:", f'        msg: "task {i} of {{{{ {tasks} }}}}"']
        else:
            lines += ["      ansible.builtin.command: /bin/true", "      changed_when: false"]
    path = directory / f"play-{kind}.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def time_baseline(play: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def callback_env(env: dict[str, str], artifacts: Path) -> dict[str, str]:
    """ansible-runner's event callback as ansible-playbook's stdout callback, set as runner sets it."""
    import ansible_runner

    callbacks = Path(ansible_runner.__file__).parent / "display_callback" / "callback"
    return {**env, "ANSIBLE_STDOUT_CALLBACK": "awx_display", "ANSIBLE_CALLBACK_PLUGINS": str(callbacks),
            "AWX_ISOLATED_DATA_DIR": str(artifacts)}  # fmt: skip


def time_wrapper(project: Project, play: Path, devnull) -> float:
    start = time.perf_counter()
    result = run_playbook(project, play, inventory="localhost,", event_handler=Progress(stream=devnull))
    elapsed = time.perf_counter() - start
    if result.rc != 0:
        raise SystemExit(f"wrapper run failed: {result.status} {result.failures}")
    return elapsed


def time_cli_startup() -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "oci-vllm"), "--version"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(project: Project, env: dict[str, str], play: Path, reps: int, devnull: Any, tmp: Path) -> dict[str, list]:
    cb_env = callback_env(env, tmp / "artifacts")
    (tmp / "artifacts").mkdir(exist_ok=True)
    times: dict[str, list] = {"base": [], "wrap": [], "callback": []}
    time_baseline(play, env)  # warm-up: file caches, .pyc
    time_wrapper(project, play, devnull)
    for rep in range(reps):
        order = ["base", "wrap", "callback"] if rep % 2 == 0 else ["callback", "wrap", "base"]
        for name in order:
            if name == "base":
                times[name].append(time_baseline(play, env))
            elif name == "callback":
                times[name].append(time_baseline(play, cb_env))
            else:
                times[name].append(time_wrapper(project, play, devnull))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--kinds", default="debug,command")
    args = parser.parse_args()

    project = Project(ROOT)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **project.ansible_env()}
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        for kind in args.kinds.split(","):
            play = write_play(Path(tmp), args.tasks, kind)
            t = measure(project, env, play, args.reps, devnull, Path(tmp))
            b, w, c = (statistics.median(t[k]) for k in ("base", "wrap", "callback"))
            print(f"play: localhost, {args.tasks} {kind} tasks; {args.reps} repetitions each, alternating order")
            for label, key, median in (("baseline ansible-playbook", "base", b), ("wrapper run_playbook", "wrap", w)):
                low, high = min(t[key]), max(t[key])
                print(f"  {label:<32} median {median:6.3f} s  (min {low:.3f}, max {high:.3f})")
            print(f"  ansible-playbook + runner's callback, no runner: median {c:6.3f} s")
            print(f"  ratio wrapper / baseline         {w / b:6.3f}")
            print(
                f"  overhead {w - b:+6.3f} s per run ({(w - b) / args.tasks * 1000:+.1f} ms per task), of which "
                f"runner's event callback inside ansible-playbook {c - b:+.3f} s, the wrapper's process {w - c:+.3f} s"
            )
    startup = statistics.median(time_cli_startup() for _rep in range(args.reps))
    print(f"oci-vllm --version start-up median {startup:.3f} s (once per command)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

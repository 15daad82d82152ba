"""Overhead of the oci-vllm wrapper (ansible-runner + event handler + progress display) against plain
`ansible-playbook` running the same play.

The play: localhost, local connection, no facts, N `ansible.builtin.debug` tasks (default 50), so Ansible's own work
is small and the wrapper's share shows. Per repetition, in alternating order:
  baseline  `ansible-playbook -i localhost, play.yml` as a subprocess, output to /dev/null (default callback)
  wrapper   oci_vllm.runner.run_playbook(...) in this process, with the live Progress display writing to /dev/null:
            fresh private data dir, suppress_env_files, runner's event callback, events written and read, cleanup.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from oci_vllm.progress import Progress  # noqa: E402
from oci_vllm.project import Project  # noqa: E402
from oci_vllm.runner import run_playbook  # noqa: E402

BIN = Path(sys.executable).parent


def write_play(directory: Path, tasks: int) -> Path:
    lines = ["---", "- name: Bench", "  hosts: localhost", "  connection: local", "  gather_facts: false", "  tasks:"]
    for i in range(tasks):
        lines += [
            f"    - name: Task {i}",
            "      ansible.builtin.debug:",
            f'        msg: "task {i} of {{{{ {tasks} }}}}"',
        ]
    path = directory / "play.yml"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    project = Project(ROOT)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **project.ansible_env()}
    base: list[float] = []
    wrap: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        play = write_play(Path(tmp), args.tasks)
        time_baseline(play, env)  # warm-up: file caches, .pyc
        time_wrapper(project, play, devnull)
        for rep in range(args.reps):
            order = [("base", base), ("wrap", wrap)] if rep % 2 == 0 else [("wrap", wrap), ("base", base)]
            for name, sink in order:
                sink.append(time_baseline(play, env) if name == "base" else time_wrapper(project, play, devnull))
    startup = statistics.median(time_cli_startup() for _rep in range(args.reps))

    b, w = statistics.median(base), statistics.median(wrap)
    print(f"play: localhost, {args.tasks} debug tasks; {args.reps} repetitions each, alternating order")
    print(f"  baseline ansible-playbook   median {b:6.3f} s  (min {min(base):.3f}, max {max(base):.3f})")
    print(f"  wrapper run_playbook        median {w:6.3f} s  (min {min(wrap):.3f}, max {max(wrap):.3f})")
    print(f"  ratio wrapper / baseline    {w / b:6.3f}")
    print(f"  overhead                    {w - b:+6.3f} s per run, {(w - b) / args.tasks * 1000:+.1f} ms per task")
    print(f"  oci-vllm --version start-up median {startup:.3f} s (once per command)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

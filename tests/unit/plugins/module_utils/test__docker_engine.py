# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The Docker engine client (plugins/module_utils/_docker_engine.py) against a fake engine on a unix socket that
answers in the engine's real formats (wait_for_models_fakes.py). How wait_for_models watches a container through it
is tested in test__wait_for_models.py."""

from __future__ import annotations

import struct

from ansible_collections.oci_gpu.vllm.plugins.module_utils._docker_engine import DockerEngine, demultiplex_log_stream
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.wait_for_models_fakes import FakeDockerEngine


def test_demultiplex_handles_both_streams_and_falls_back_to_raw():
    framed = struct.pack(">BxxxI", 1, 4) + b"out\n" + struct.pack(">BxxxI", 2, 4) + b"err\n"
    assert demultiplex_log_stream(framed) == "out\nerr\n"
    assert demultiplex_log_stream(b"plain text, no frames\n") == "plain text, no frames\n"
    assert demultiplex_log_stream(b"") == ""


def test_docker_client_passes_tail_to_the_engine():
    with FakeDockerEngine() as engine:
        container = engine.add("c")
        for i in range(10):
            container.log("l%d" % i, stream=1 + i % 2)
        text = DockerEngine(engine.socket_path).log_tail("c", 3)
        state = DockerEngine(engine.socket_path).inspect("c")
    assert text == "l7\nl8\nl9\n"
    assert state.running and state.restart_count == 0 and not state.tty

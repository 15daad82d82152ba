# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fetch step of the oci_gpu inventory (plugins/plugin_utils/_oci_gpu_fetch.py) with fake OCI clients
(oci_gpu_fakes.py): pagination, 429 backoff, inaccessible compartments, address joins. Stdlib + ansible only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import (
    FetchError,
    FetchOptions,
    fetch_inventory,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.plugin_utils.oci_gpu_fakes import (
    TENANCY,
    FakeOci,
    add_host,
    comp,
)


@pytest.fixture(params=["wire", "models"])
def fake(request):
    fake = FakeOci()
    fake.wire = request.param == "wire"
    fake.compartments = [comp("c1"), comp("c2"), comp("c3", parent="c2")]
    for n in range(1, 8):
        add_host(fake, "r1", ["c1", "c2", "c3"][n % 3], n, public=n % 2 == 1)
    add_host(fake, "r1", "c1", 20, shape="VM.Standard.E4.Flex")  # not a GPU shape
    fake.instances[("r1", "c1")][-1].shape_config = SimpleNamespace(gpus=0, gpu_description=None)
    return fake


def fetch(fake, sleeps=None, **options):
    options.setdefault("retry_base_delay", 1.0)
    return fetch_inventory(
        fake, FetchOptions(**options), sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )


def test_fetch_joins_addresses_across_pages(fake):
    result = fetch(fake)
    by_id = {r["id"]: r for r in result.records}
    assert sorted(by_id) == sorted("inst%d" % n for n in range(1, 8))
    assert by_id["inst1"]["public_ip"] == "203.0.113.1" and by_id["inst1"]["private_ip"] == "10.0.0.1"
    assert by_id["inst2"]["public_ip"] is None and by_id["inst2"]["private_ip"] == "10.0.0.2"
    assert by_id["inst2"]["compartment_name"] == "name-c3"
    assert result.warnings == []
    assert result.calls["ListInstances"] > 4  # page size 2 forces several pages per compartment


def test_429_is_retried_with_growing_jittered_backoff(fake):
    fake.throttle = {"list_instances": 4}
    sleeps = []
    result = fetch(fake, sleeps=sleeps)
    assert len(result.records) == 7
    assert len(sleeps) == 4
    assert all(0.5 * 2**i <= s <= 1.0 * 2**i for i, s in enumerate(sorted(sleeps)))


def test_429_gives_up_after_max_retries(fake):
    fake.throttle = {"list_instances": 100}
    with pytest.raises(FetchError, match="429"):
        fetch(fake, max_retries=2)


def test_denied_compartment_warns_and_keeps_the_rest(fake):
    fake.denied = {"c2"}
    result = fetch(fake)
    assert {r["compartment_id"] for r in result.records} == {"c1", "c3"}
    assert len(result.warnings) == 1 and "name-c2" in result.warnings[0] and "404" in result.warnings[0]


def test_everything_denied_is_an_error(fake):
    fake.denied = {TENANCY, "c1", "c2", "c3"}
    fake.compartments = []
    with pytest.raises(FetchError, match="no compartment could be listed"):
        fetch(fake)


def test_subtree_below_a_non_root_compartment(fake):
    result = fetch(fake, compartments=["c2"])
    assert {r["compartment_id"] for r in result.records} == {"c2", "c3"}
    assert "list_compartments" in fake.calls
    only = fetch(fake, compartments=["c2"], compartment_subtree=False)
    assert {r["compartment_id"] for r in only.records} == {"c2"}


def test_no_per_host_calls(fake):
    for n in range(30, 90):
        add_host(fake, "r1", "c1", n)
    fake.page_size = 1000
    result = fetch(fake)
    assert len(result.records) == 67
    # identity 1 + per compartment (4 incl. root) 2 listings + subnets 3 + public ip lists (reserved + AD) 2 x 3
    assert sum(result.calls.values()) == 1 + 8 + 3 + 6


def test_timestamps_read_as_the_sdk_model_wrote_them(fake):
    fake.instances[("r1", "c1")][0].time_created = "2026-11-01T10:00:00.000Z"
    records = {r["id"]: r for r in fetch(fake).records}
    assert records[fake.instances[("r1", "c1")][0].id]["time_created"] == "2026-11-01T10:00:00+00:00"

# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""gpu_instances logic against a fake OCI API (oci_provision_fakes.py): identity, fallback, errors, waits."""

from __future__ import annotations

import base64

import pytest
from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision import (
    CapacityExhausted,
    InvalidRequest,
    QuotaExceeded,
    ServiceFailure,
    WaitTimeout,
    check_shape,
    run,
)
from ansible_collections.oci_gpu.vllm.tests.unit.plugins.module_utils.oci_provision_fakes import (
    OUT_OF_CAPACITY,
    THROTTLED,
    Clock,
    FakeApi,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUnitTestKey me@host"
COMP = "ocid1.compartment.oc1..c"
SUBNET = "ocid1.subnet.oc1.r.s"


def params(**overrides):
    base = dict(
        name="seed",
        state="present",
        count=2,
        shape="VM.GPU.A10.1",
        compartment_id=COMP,
        subnet_id=SUBNET,
        boot_volume_size_gb=200,
        ssh_public_key=KEY,
        user_data="#cloud-config\n",
        freeform_tags=None,
        availability_domains=[],
        wait=True,
        wait_timeout=60,
    )
    base.update(overrides)
    return base


def go(api, check_mode=False, clock=None, **overrides):
    clock = clock or Clock()
    return run(api, params(**overrides), check_mode=check_mode, sleep=clock.sleep, clock=clock, poll_interval=1)


def test_launches_missing_members_with_tags_image_metadata_and_waits_running():
    api = FakeApi()
    result = go(api)
    assert result["changed"] and result["launched"] == ["seed-1", "seed-2"]
    assert [i["lifecycle_state"] for i in result["instances"]] == ["RUNNING", "RUNNING"]
    details = api.launched[0]
    assert details["freeformTags"] == {"vllm": "true", "oci_gpu_vllm_group": "seed"}
    assert details["sourceDetails"] == {
        "sourceType": "image",
        "imageId": "ocid1.image.oc1.r.new",
        "bootVolumeSizeInGBs": 200,
    }
    assert details["metadata"]["ssh_authorized_keys"] == KEY
    assert base64.b64decode(details["metadata"]["user_data"]) == b"#cloud-config\n"
    assert details["createVnicDetails"]["subnetId"] == SUBNET and details["availabilityDomain"] == "AD-1"
    assert result["instances"][0]["public_ip"].startswith("198.51.100.")


def test_boolean_tag_values_are_sent_as_the_lowercase_strings_the_inventory_selects():
    api = FakeApi()
    go(api, count=1, freeform_tags={"vllm": True, "team": 7})
    assert api.launched[0]["freeformTags"] == {"vllm": "true", "team": "7", "oci_gpu_vllm_group": "seed"}


def test_rerun_with_everything_present_changes_nothing_and_launches_nothing():
    api = FakeApi()
    api.add("seed-1", "seed")
    api.add("seed-2", "seed")
    api.add("seed-2", "other")  # same name, other group: not ours
    result = go(api)
    assert result["changed"] is False and result["launched"] == []
    assert "launch_instance" not in api.calls and "list_images" not in api.calls


def test_identity_needs_the_tag_and_ignores_terminated_and_reports_extra_indexes():
    api = FakeApi()
    api.add("seed-1", "")  # right name, no tag
    api.add("seed-2", "seed", state="TERMINATED")
    api.add("seed-3", "seed")
    result = go(api)
    assert result["launched"] == ["seed-1", "seed-2"] and result["not_managed"] == ["seed-3"]


def test_out_of_capacity_falls_back_in_order_and_skips_full_domains_for_the_rest():
    api = FakeApi()
    api.launch_errors["AD-1"] = [OUT_OF_CAPACITY]
    result = go(api)
    assert [i["availability_domain"] for i in result["instances"]] == ["AD-2", "AD-2"]
    assert [i["availability_domains_full"] for i in result["instances"]] == [["AD-1"], ["AD-1"]]
    assert api.calls.count("launch_instance") == 3 and result["availability_domains_full"] == ["AD-1"]


def test_default_domain_order_is_by_name_whatever_order_the_listing_gives():
    result = go(FakeApi(ads=["AD-3", "AD-1", "AD-2"]), count=1)
    assert result["availability_domain_order"] == ["AD-1", "AD-2", "AD-3"]
    assert result["instances"][0]["availability_domain"] == "AD-1"


def test_configured_domain_order_is_used_and_unknown_domains_refused():
    api = FakeApi()
    api.launch_errors["AD-3"] = [OUT_OF_CAPACITY]
    result = go(api, count=1, availability_domains=["AD-3", "AD-1"])
    assert result["instances"][0]["availability_domain"] == "AD-1" and result["availability_domain_order"] == [
        "AD-3",
        "AD-1",
    ]
    with pytest.raises(InvalidRequest, match="AD-9 not in this region: use AD-1, AD-2, AD-3"):
        go(FakeApi(), availability_domains=["AD-9"])


def test_every_domain_full_fails_naming_them_and_keeps_what_launched():
    api = FakeApi()
    for ad in ("AD-1", "AD-2", "AD-3"):
        api.launch_errors[ad] = [OUT_OF_CAPACITY]
    with pytest.raises(CapacityExhausted, match="tried AD-1, AD-2, AD-3") as failure:
        go(api)
    assert failure.value.kind == "capacity" and failure.value.result["instances"] == []


def test_limit_or_quota_stops_at_once_with_the_service_message_and_what_to_ask_for():
    api = FakeApi()
    api.launch_errors["AD-1"] = [(400, "QuotaExceeded", "Quota exceeded for gpu-a10-count in compartment c")]
    with pytest.raises(QuotaExceeded) as failure:
        go(api)
    msg = failure.value.msg
    assert "HTTP 400 QuotaExceeded: Quota exceeded for gpu-a10-count" in msg
    assert "room for 2 more VM.GPU.A10.1 instance(s)" in msg and "(count=2)" in msg
    assert api.calls.count("launch_instance") == 1


def test_other_launch_errors_are_not_taken_for_capacity():
    api = FakeApi()
    api.launch_errors["AD-1"] = [(500, "InternalError", "Something else broke")]
    with pytest.raises(ServiceFailure, match="launching seed-1 failed: HTTP 500 InternalError: Something else broke"):
        go(api)
    assert api.calls.count("launch_instance") == 1


def test_throttling_is_retried_with_growing_backoff():
    api = FakeApi()
    api.errors["list_instances"] = [THROTTLED, THROTTLED]
    api.errors["launch_instance"] = [THROTTLED]
    clock = Clock()
    result = go(api, clock=clock)
    assert result["retries"] == 3 and result["changed"]
    backoff = clock.sleeps[:2]
    assert 0.5 <= backoff[0] <= 1.0 and 1.0 <= backoff[1] <= 2.0


def test_throttling_gives_up_after_max_retries():
    api = FakeApi()
    api.errors["list_instances"] = [THROTTLED] * 10
    with pytest.raises(ServiceFailure, match="HTTP 429 TooManyRequests"):
        go(api)


def test_wait_times_out_on_the_injected_clock():
    api = FakeApi(polls=1000)
    with pytest.raises(WaitTimeout, match="seed-1, seed-2 not RUNNING after 60s") as failure:
        go(api)
    assert failure.value.result["launched"] == ["seed-1", "seed-2"]


def test_check_mode_reports_without_launching_or_terminating():
    api = FakeApi()
    api.add("seed-1", "seed")
    result = go(api, check_mode=True)
    assert result["would_launch"] == ["seed-2"] and result["changed"] and "launch_instance" not in api.calls
    result = go(api, check_mode=True, state="absent")
    assert [t["name"] for t in result["terminated"]] == ["seed-1"] and "terminate_instance" not in api.calls


def test_absent_terminates_every_member_and_waits_then_changes_nothing():
    api = FakeApi()
    api.add("seed-1", "seed")
    api.add("seed-7", "seed")
    api.add("other-1", "other")
    result = go(api, state="absent", preserve_boot_volume=True, count=0, subnet_id=None)
    assert sorted(t["name"] for t in result["terminated"]) == ["seed-1", "seed-7"]
    assert [p for _i, p in api.terminated] == [True, True]
    assert go(api, state="absent")["changed"] is False


def test_stopped_member_is_reported_not_started():
    api = FakeApi()
    api.add("seed-1", "seed", state="STOPPED")
    with pytest.raises(ServiceFailure, match="seed-1 is STOPPED"):
        go(api)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"count": 0}, "count=0 is not allowed with state=present: give 1 or more"),
        ({"count": -1}, "count=-1 is not allowed"),
        ({"subnet_id": None}, "subnet_id is required with state=present"),
        ({"subnet_id": "ocid1.vcn.oc1.r.x"}, "subnet_id='ocid1.vcn.oc1.r.x' is not a subnet OCID"),
        ({"compartment_id": "c"}, "compartment_id='c' is not a compartment OCID"),
        ({"name": "1bad name"}, "name='1bad name' is not allowed"),
        ({"boot_volume_size_gb": 49}, "boot_volume_size_gb=49 is not allowed: give 50 to 32768"),
        ({"ssh_public_key": ""}, "ssh_public_key is required"),
        ({"ssh_public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "not an OpenSSH public key line"),
        ({"shape": "GPU"}, "shape='GPU' is not an OCI shape name"),
        ({"freeform_tags": {"oci_gpu_vllm_group": "x"}}, "freeform_tags.oci_gpu_vllm_group is set by the module"),
    ],
)
def test_bad_input_is_refused_before_any_call(overrides, message):
    api = FakeApi()
    with pytest.raises(InvalidRequest) as failure:
        go(api, **overrides)
    assert message in failure.value.msg and failure.value.kind == "bad_input"
    assert api.calls == []


def test_image_lookup_finds_nothing():
    api = FakeApi()
    api.images = []
    with pytest.raises(
        InvalidRequest, match=r"no image of Canonical Ubuntu 24\.04 is available for shape VM\.GPU\.A10"
    ):
        go(api, image_os_version="24.04")
    assert "launch_instance" not in api.calls


def test_check_shape_uses_the_given_table():
    assert check_shape("VM.GPU.A10.1", {"VM.GPU.A10.1": 1}) == "VM.GPU.A10.1"
    with pytest.raises(
        InvalidRequest, match=r"shape='VM.GPU.A99.1' is not a known OCI GPU shape: use one of BM.X, VM.GPU.A10.1"
    ):
        check_shape("VM.GPU.A99.1", ["VM.GPU.A10.1", "BM.X"])

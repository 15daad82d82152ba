# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""OCI API access of the oci_gpu inventory (plugins/plugin_utils/_oci_gpu_clients.py): the JSON reader. Retries and
paging are exercised through the fetch step (test__oci_gpu_fetch.py)."""

from __future__ import annotations

from types import SimpleNamespace

from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_clients import wire


def test_wire_reads_json_with_model_names():
    inst = wire({"shapeConfig": {"gpus": 8, "gpuDescription": "H100"}, "freeformTags": {"my_tag": "x"}, "id": "i"})
    assert (inst.shape_config.gpus, inst.shape_config.gpu_description, inst.id) == (8, "H100", "i")
    assert inst.freeform_tags == {"my_tag": "x"} and inst.fault_domain is None  # left out by the service: None
    assert wire([{"isPrimary": True}, "text"])[0].is_primary is True
    assert wire(SimpleNamespace(a=1)).a == 1  # SDK models and fakes pass unchanged


def test_wire_fields_read_as_properties_read_as_the_general_lookup():
    from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_clients import _READ_FIELDS, Wire, _camel

    json_object = {_camel(name): "value-" + name for name in _READ_FIELDS}
    json_object.update(shapeConfig={"gpus": 2}, freeformTags={"k": "v"}, ipAddress=[{"isPrimary": False}, "x"])
    inst = wire(json_object)
    for name in (*_READ_FIELDS, "not_read_by_the_fetch_step"):
        assert isinstance(getattr(Wire, name, None), property) is (name in _READ_FIELDS)
        assert getattr(inst, name) == Wire.__getattr__(inst, name), name
    assert isinstance(inst.shape_config, Wire) and inst.shape_config.gpus == 2
    assert isinstance(inst.ip_address[0], Wire) and inst.ip_address[0].is_primary is False
    assert inst.not_read_by_the_fetch_step is None

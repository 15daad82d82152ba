"""Drive the oci_gpu.vllm collection from Python."""

__version__ = "0.1.0"

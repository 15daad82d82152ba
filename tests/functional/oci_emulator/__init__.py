"""A loopback emulator of the OCI REST API (identity + core list/get calls) for testing with the real `oci` SDK."""

"""Deploy stage: bundles to copy to a device (``bundle``) and benchmarks over SSH (``remote``).

Import the submodules explicitly: ``from edgessl.deploy.bundle import build_bundle``.
"""

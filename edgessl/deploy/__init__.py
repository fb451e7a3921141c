"""Deploy stage: bundles to copy to a device (``bundle``) and benchmarks over SSH (``remote``).

``bundle`` builds on ``bundle_config`` (the config; runtime, device, requirements),
``bundle_models`` (export or copy the models), ``host_reference`` (smoke images, host baseline)
and ``bundle_files`` (runner, vendored modules, README, archive); ``remote`` on ``ssh`` (address,
session), ``remote_probe`` (the device check) and ``remote_config``; ``target`` reads a
profile's CPU. Import the submodules explicitly:
``from edgessl.deploy.bundle import build_bundle``.
"""

"""Devices stage: what this host offers (``host``) and device profiles (``profile``).

Import the submodules explicitly: ``from edgessl.devices.host import detect_host``.
"""

"""``edgessl devices``: what this host offers, and the shipped device profiles."""

from __future__ import annotations

from edgessl.cli.app import app, echo, user_errors


@app.command("devices")
def devices() -> None:
    """Show the CPU and its ISA flags, OpenVINO devices, ONNX Runtime providers, CUDA GPUs
    and the shipped device profiles."""
    with user_errors():
        from edgessl.devices.host import detect_host
        from edgessl.devices.profile import list_profiles, load_profile

        host = detect_host()
        cpu = host.cpu
        echo(f"CPU:          {cpu.model} ({cpu.logical_cores} logical cores)")
        echo(f"ISA flags:    {', '.join(cpu.flags) or 'none of interest'}"
             + ("" if cpu.has_fast_int8 else "  (no int8 dot-product: int8 gains will be small)"))
        ov = [f"{d.name} ({d.full_name})" for d in host.openvino_devices]
        echo(f"OpenVINO:     {', '.join(ov) or host.problems.get('openvino', 'no devices')}")
        ort = ", ".join(host.onnxruntime_providers)
        echo(f"ONNX Runtime: {ort or host.problems.get('onnxruntime', 'no providers')}")
        cuda = [f"cuda:{d.index} ({d.name})" for d in host.cuda_devices]
        echo(f"CUDA:         {', '.join(cuda) or host.problems.get('torch', 'not available')}")
        echo("versions:     " + ", ".join(f"{k} {v}" for k, v in host.versions.items()))
        echo("")
        echo("device profiles (use the name or a .toml path):")
        for name in list_profiles():
            profile = load_profile(name)
            echo(f"  {name:<12} {'/'.join(profile.runtimes)} on {profile.device}: "
                 f"{profile.description}")

"""``edgessl devices``: what this host offers, and which device profiles it can run."""

from __future__ import annotations

from edgessl.cli.app import app, echo, user_errors


def _host_lines(host) -> list[str]:
    cpu = host.cpu
    ov = [f"{d.name} ({d.full_name})" for d in host.openvino_devices]
    cuda = [f"cuda:{d.index} ({d.name})" for d in host.cuda_devices]
    return [
        f"CPU:          {cpu.model} ({cpu.logical_cores} logical cores, {host.machine}, "
        f"{host.system})",
        f"ISA flags:    {', '.join(cpu.flags) or 'none of interest'}"
        + ("" if cpu.has_fast_int8 else "  (no int8 dot-product: int8 gains will be small)"),
        f"OpenVINO:     {', '.join(ov) or host.problems.get('openvino', 'no devices')}",
        "ONNX Runtime: " + (", ".join(host.onnxruntime_providers)
                            or host.problems.get("onnxruntime", "no providers")),
        f"CUDA:         {', '.join(cuda) or host.problems.get('torch', 'not available')}",
        *([f"board:        {host.board}"] if host.board else []),
        "versions:     " + ", ".join(f"{k} {v}" for k, v in host.versions.items()),
    ]


def profile_lines(host, names) -> list[str]:
    """Each profile with 'available' (and the runtimes that can drive it) or why not + fix."""
    from edgessl.devices.availability import check_profile, summarize
    from edgessl.devices.profile import load_profile

    lines = []
    for name in names:
        profile = load_profile(name)
        status = summarize(check_profile(profile, host))
        lines.append(f"  {name:<15}{'available' if status.available else 'unavailable':<13}"
                     f"{'/'.join(profile.runtimes)} on {profile.device}: {profile.description}")
        if status.available:
            lines.append(f"  {'':<15}{'':<13}runs with: {status.runtime}")
        else:
            lines.append(f"  {'':<15}{'':<13}why: {status.reason}")
            lines.append(f"  {'':<15}{'':<13}fix: {status.fix}")
    return lines


@app.command("devices")
def devices() -> None:
    """Show the CPU and its ISA flags, OpenVINO devices, ONNX Runtime providers, CUDA GPUs,
    and every device profile with whether this host can run it (and if not, why and how)."""
    with user_errors():
        from edgessl.devices.host import detect_host
        from edgessl.devices.profile import list_profiles

        host = detect_host()
        for line in _host_lines(host):
            echo(line)
        echo("")
        echo("device profiles (benchmark --profile NAME, or --profile path/to/own.toml):")
        for line in profile_lines(host, list_profiles()):
            echo(line)

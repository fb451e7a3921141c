"""What a bundle is built for: the profile's CPU (for INT8 schemes) and its recommended model.

A bundle runs on the device its profile describes, not on the host that builds it, so
``edgessl deploy`` quantizes for the profile's ``arch`` and ``isa`` and never reads the build
host's CPU flags. Of the models it bundles, the one the profile recommends is the default of
``run.py``: the fastest precision the profile lists whose artifact held up in validation.
"""

from __future__ import annotations

from edgessl.export.schemes import CpuTarget

# Reduced precisions, preferred first: what a profile lists runs well on its device, and fewer
# bits run faster. Without one that holds up, the default is fp32 (it matches PyTorch).
REDUCED_PRECISIONS = ("int8", "fp16")
# A reduced-precision artifact is recommended when validation against PyTorch shows at most
# this top-1 loss (percentage points), or, where top-1 was not measured (unlabeled data),
# at least this mean cosine similarity of the outputs.
MAX_TOP1_DROP_POINTS = 1.0
MIN_COSINE = 0.99


def profile_cpu(profile) -> CpuTarget | None:
    """The CPU of ``profile``'s device, for the INT8 scheme (see ``edgessl.export.schemes``);
    None for a profile of the host itself (``isa = ["host"]``): the scheme follows this CPU."""
    if profile.isa == ("host",):
        return None
    label = f"profile '{profile.name}'"
    if profile.arch:
        label += f" ({', '.join(profile.arch)})"
    return CpuTarget(label, profile.cpu_family, profile.isa or None)


def passed_validation(report: dict | None) -> tuple[bool, str]:
    """Whether an export report shows the artifact agrees with PyTorch, and in what terms."""
    if not report:
        return False, "no validation report"
    drop = report.get("top1_drop_points")
    if drop is not None:
        return drop <= MAX_TOP1_DROP_POINTS, (f"top-1 loss {drop:.2f} points against PyTorch "
                                              f"(at most {MAX_TOP1_DROP_POINTS:g} allowed)")
    cosine = report.get("cosine")
    if cosine is None:
        return False, "no accuracy in its validation report"
    return cosine >= MIN_COSINE, (f"output cosine {cosine:.4f} to PyTorch (at least "
                                  f"{MIN_COSINE:g} needed)")


def recommend(profile, models: list[dict], reports: dict[str, dict | None]) -> dict:
    """The model a bundle runs by default, and why.

    Args:
        profile: the bundle's device profile.
        models: the bundle's model entries (``name``, ``precision``), in export order.
        reports: model name -> its export validation report (None where there is none).

    Returns:
        ``{"model": name, "reason": one line}`` for bundle.json.
    """
    if len(models) == 1:
        return {"model": models[0]["name"], "reason": "the only model in the bundle"}
    by_precision = {m["precision"]: m for m in models}
    rejected = []
    for precision in REDUCED_PRECISIONS:
        entry = by_precision.get(precision)
        if entry is None or precision not in profile.precisions:
            continue
        ok, why = passed_validation(reports.get(entry["name"]))
        if ok:
            return {"model": entry["name"], "reason": f"profile '{profile.name}' lists "
                                                      f"{precision} and {entry['name']} passed "
                                                      f"validation: {why}"}
        rejected.append(f"{entry['name']} failed validation: {why}")
    fallback = by_precision.get("fp32", models[0])
    kept = ("fp32 matches PyTorch" if fallback["precision"] == "fp32"
            else f"{fallback['name']} is the first model")
    return {"model": fallback["name"], "reason": "; ".join([*rejected, kept])}

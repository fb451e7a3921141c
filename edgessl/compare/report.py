"""The comparison as a table (terminal and Markdown), JSON and a bar plot with fold spread."""

from __future__ import annotations

from pathlib import Path

from edgessl.compare.result import CompareResult


def format_table(result: CompareResult) -> str:
    """Plain-text table: one row per arm, the recommended one marked."""
    k = result.labels_per_class or "all"
    lines = [f"cross-validated top-1 on {result.labeled_images} labeled images ({k} per class, "
             f"{result.folds} folds); SSL pool: {result.ssl_pool}",
             f"  {'start':<62}  {'top-1':>7}  {'± std':>6}  {'time':>7}"]
    for arm in result.arms:
        mark = "  <- recommended" if arm.name == result.recommended else ""
        lines.append(f"  {arm.title:<62}  {100 * arm.top1_mean:>6.1f}%  "
                     f"{100 * arm.top1_std:>6.1f}  {arm.seconds:>6.0f}s{mark}")
    lines.append(f"recommended: {result.reason}")
    return "\n".join(lines)


def format_markdown(result: CompareResult) -> str:
    k = result.labels_per_class or "all"
    rows = ["| start | top-1 (mean ± std over folds) | per fold | time (s) |",
            "|---|---|---|---|"]
    for arm in result.arms:
        name = f"**{arm.title}**" if arm.name == result.recommended else arm.title
        folds = ", ".join(f"{100 * s:.1f}" for s in arm.top1_per_fold)
        rows.append(f"| {name} | {100 * arm.top1_mean:.1f} ± {100 * arm.top1_std:.1f} | "
                    f"{folds} | {arm.seconds:.0f} |")
    return "\n".join([
        f"# Which start to ship: {result.labeled_images} labeled images, {k} per class, "
        f"{result.folds}-fold cross-validation", "", *rows, "",
        f"SSL pool: {result.ssl_pool}.", "", *_settings_line(result),
        f"Recommended: {result.reason}.", ""])


def _settings_line(result: CompareResult) -> list[str]:
    s = result.settings
    if not s:
        return []
    return [f"Settings: start {s['start']} at {s['pretrained_size']} px; scratch and SSL "
            f"{s['arch']} at {s['image_size']} px; SSL {s['ssl_method']} {s['ssl_epochs']} "
            f"epochs, continued {s['continued_epochs']}; full fine-tunes "
            f"{s['full_epochs']} epochs; seed {s['seed']}.", ""]


def write_plot(result: CompareResult, path: Path) -> Path:
    """Bars of mean top-1 with each fold's score as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(result.arms)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(arms) + 1.4))
    y = list(range(len(arms)))
    colours = ["tab:green" if a.name == result.recommended else "tab:blue" for a in arms]
    ax.barh(y, [100 * a.top1_mean for a in arms], xerr=[100 * a.top1_std for a in arms],
            color=colours, alpha=0.8)
    for i, arm in enumerate(arms):
        ax.plot([100 * s for s in arm.top1_per_fold], [i] * len(arm.top1_per_fold), "k.")
    ax.set_yticks(y, [a.title for a in arms], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("cross-validated top-1 (%)")
    ax.set_title(f"{result.labeled_images} labeled images, "
                 f"{result.labels_per_class or 'all'} per class, {result.folds} folds",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: CompareResult, folder: Path) -> None:
    """compare.json, compare.md and compare.png in ``folder``."""
    from edgessl.io import dumps_json

    (folder / "compare.json").write_text(dumps_json(result.to_dict(), "compare.json"),
                                         encoding="utf-8")
    (folder / "compare.md").write_text(format_markdown(result), encoding="utf-8")
    write_plot(result, folder / "compare.png")

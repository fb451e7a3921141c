"""The ``edgessl`` command line: a thin layer over the Python API, one file per command."""

from __future__ import annotations

from edgessl.cli import (  # noqa: F401 - each module registers its command on ``app``
    backbones_cmd,
    benchmark_cmd,
    compare_cmd,
    data_cmd,
    deploy_cmd,
    devices_cmd,
    export_cmd,
    finetune_cmd,
    predict_cmd,
    pretrain_cmd,
    quickstart_cmd,
)
from edgessl.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]

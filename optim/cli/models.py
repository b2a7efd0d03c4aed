"""``archopt arch | throughput | measure | hardware | calibrate``: shapes, hardware and speed.

This module holds ``arch`` and ``hardware`` and registers the speed commands of
:mod:`optim.cli.throughput`; the shape flags come from :mod:`optim.cli.shape`, the printing
from :mod:`optim.cli.output`.

JSON outputs (a contract other tools read):

* ``arch --json``: :meth:`Arch.features` (shape fields, params, non_embedding_params,
  attention_params, mlp_params, mlp_attn_ratio, d_over_sqrt_n, aspect_ratio, gqa_group,
  kv_bytes_per_token, ...) plus ``label``.
* ``hardware --json``: one :meth:`models.hardware.Hardware.to_dict` per profile.
* ``throughput``, ``measure``, ``calibrate``: see :mod:`optim.cli.throughput`.
"""

from __future__ import annotations

import typer

from models.arch import Arch

from .output import print_fields, print_json
from .shape import shape_options
from .throughput import (
    HardwareFileOption,
    JsonOption,
    calibrate_command,
    measure_command,
    throughput_command,
)

__all__ = ["register", "arch_command", "hardware_command"]


# ---- commands ---------------------------------------------------------------------------------
@shape_options
def arch_command(arch: Arch, json_out: JsonOption = False) -> None:
    """Parameter counts and shape descriptors of an architecture."""
    features = {**arch.features(), "label": arch.label()}
    if json_out:
        print_json(features)
    else:
        print_fields(arch.label(), list(features.items()))


def hardware_command(
    hardware_file: HardwareFileOption = None, json_out: JsonOption = False
) -> None:
    """List the hardware profiles (built-in and user)."""
    from models.hardware import list_hardware

    profiles = list_hardware(hardware_file)
    if json_out:
        print_json([hw.to_dict() for hw in profiles])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hardware")
    for col in ("id", "name", "TFLOP/s (bf16)", "GB/s", "GB", "link GB/s", "source"):
        table.add_column(col)
    for hw in profiles:
        link = (
            "-" if hw.interconnect_bandwidth is None else f"{hw.interconnect_bandwidth / 1e9:.4g}"
        )
        table.add_row(
            hw.id,
            hw.name,
            f"{hw.peak_flops / 1e12:.4g}",
            f"{hw.mem_bandwidth / 1e9:.4g}",
            f"{hw.mem_bytes / 1e9:.4g}",
            link,
            hw.source,
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the ``archopt`` app."""
    app.command("arch")(arch_command)
    app.command("throughput")(throughput_command)
    app.command("measure")(measure_command)
    app.command("hardware")(hardware_command)
    app.command("calibrate")(calibrate_command)

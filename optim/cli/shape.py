"""The shape flags of the command line, defined once.

``--d-model ... --tie-embeddings`` or ``--hf-config PATH`` come from :func:`shape_options`, a
decorator any command group can reuse::

    @app.command()
    @shape_options
    def my_command(arch: Arch, json_out: bool = False) -> None: ...

:func:`arch_from_options` turns the flags into an :class:`~models.arch.Arch` (bad input ->
``ArchError``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from models.arch import SHAPE_FIELDS, Arch, ArchError

__all__ = ["shape_options", "arch_from_options", "SHAPE_OPTION_NAMES"]

#: Parameter names :func:`shape_options` adds to a command.
SHAPE_OPTION_NAMES: tuple[str, ...] = (*SHAPE_FIELDS, "hf_config")

_SHAPE_PANEL = "Shape (flags or --hf-config)"

_SHAPE_PARAMETERS: list[inspect.Parameter] = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, default, annotation in (
        (
            "d_model",
            None,
            Annotated[
                Optional[int],
                typer.Option("--d-model", help="Hidden size.", rich_help_panel=_SHAPE_PANEL),
            ],
        ),
        (
            "n_layers",
            None,
            Annotated[
                Optional[int],
                typer.Option("--n-layers", help="Decoder blocks.", rich_help_panel=_SHAPE_PANEL),
            ],
        ),
        (
            "n_heads",
            None,
            Annotated[
                Optional[int],
                typer.Option("--n-heads", help="Query heads.", rich_help_panel=_SHAPE_PANEL),
            ],
        ),
        (
            "n_kv_heads",
            None,
            Annotated[
                Optional[int],
                typer.Option(
                    "--n-kv-heads",
                    help="Key/value heads (default: n_heads).",
                    rich_help_panel=_SHAPE_PANEL,
                ),
            ],
        ),
        (
            "head_dim",
            None,
            Annotated[
                Optional[int],
                typer.Option(
                    "--head-dim",
                    help="Per-head dim (default: d_model / n_heads).",
                    rich_help_panel=_SHAPE_PANEL,
                ),
            ],
        ),
        (
            "ffn_dim",
            None,
            Annotated[
                Optional[int],
                typer.Option(
                    "--ffn-dim", help="SwiGLU intermediate size.", rich_help_panel=_SHAPE_PANEL
                ),
            ],
        ),
        (
            "vocab_size",
            None,
            Annotated[
                Optional[int],
                typer.Option("--vocab-size", help="Vocabulary size.", rich_help_panel=_SHAPE_PANEL),
            ],
        ),
        (
            "tie_embeddings",
            None,
            Annotated[
                Optional[bool],
                typer.Option(
                    "--tie-embeddings/--no-tie-embeddings",
                    help="Share input and output embeddings (default: no).",
                    rich_help_panel=_SHAPE_PANEL,
                ),
            ],
        ),
        (
            "hf_config",
            None,
            Annotated[
                Optional[Path],
                typer.Option(
                    "--hf-config",
                    help="Read the shape from a LLaMA config.json instead of the flags.",
                    rich_help_panel=_SHAPE_PANEL,
                ),
            ],
        ),
    )
]


def arch_from_options(
    *,
    d_model: int | None = None,
    n_layers: int | None = None,
    n_heads: int | None = None,
    n_kv_heads: int | None = None,
    head_dim: int | None = None,
    ffn_dim: int | None = None,
    vocab_size: int | None = None,
    tie_embeddings: bool | None = None,
    hf_config: Path | str | None = None,
) -> Arch:
    """The Arch the shape flags describe, or the one in ``hf_config`` (not both).

    Raises:
        ArchError: missing or conflicting flags, invalid sizes, unreadable config.
    """
    flags = {
        "d_model": d_model,
        "n_layers": n_layers,
        "n_heads": n_heads,
        "n_kv_heads": n_kv_heads,
        "head_dim": head_dim,
        "ffn_dim": ffn_dim,
        "vocab_size": vocab_size,
        "tie_embeddings": tie_embeddings,
    }
    given = [name for name, value in flags.items() if value is not None]
    if hf_config is not None:
        if given:
            raise ArchError(
                f"give either --hf-config or shape flags, not both "
                f"(got --{given[0].replace('_', '-')})"
            )
        return Arch.from_hf_config(Path(hf_config))
    missing = [
        name
        for name in ("d_model", "n_layers", "n_heads", "ffn_dim", "vocab_size")
        if flags[name] is None
    ]
    if (
        missing
        or d_model is None
        or n_layers is None
        or n_heads is None
        or ffn_dim is None
        or vocab_size is None
    ):
        raise ArchError(
            "missing shape flag(s) "
            + ", ".join("--" + m.replace("_", "-") for m in missing)
            + " (or give --hf-config)"
        )
    for name, size in (("d_model", d_model), ("n_heads", n_heads)):
        if size <= 0:
            raise ArchError(f"{name} must be positive, got {size}")
    if head_dim is None:
        if d_model % n_heads:
            raise ArchError(
                f"d_model ({d_model}) is not divisible by n_heads ({n_heads}); give --head-dim"
            )
        head_dim = d_model // n_heads
    return Arch(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_heads if n_kv_heads is None else n_kv_heads,
        head_dim=head_dim,
        ffn_dim=ffn_dim,
        vocab_size=vocab_size,
        tie_embeddings=bool(tie_embeddings),
    )


def shape_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a Typer command taking ``arch: Arch``: replaces that parameter by the shape
    flags and ``--hf-config``, and passes the parsed :class:`Arch` (bad input -> ArchError)."""
    hints = typing.get_type_hints(func, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(func).parameters.values()
        if p.name != "arch"
    ]
    params = own + _SHAPE_PARAMETERS

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        shape = {name: kwargs.pop(name) for name in SHAPE_OPTION_NAMES}
        return func(arch=arch_from_options(**shape), **kwargs)

    del wrapper.__wrapped__  # Typer must see the new signature, not the wrapped one
    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        sorted(params, key=lambda p: p.kind)
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper

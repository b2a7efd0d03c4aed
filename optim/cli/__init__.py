"""The ``archopt`` command line: a thin shell over the Python API.

Each command group's module exposes ``register(app)`` (``models``, ``surrogate``, ``campaign``,
``bench``; ``models`` also registers the commands of ``throughput``); ``shape`` and ``output``
hold the shape flags and printing those commands share. Modules import heavy libraries (torch,
ax, jax) inside the command bodies so ``archopt arch`` stays fast.
Every :class:`~models.errors.ArchoptError` (bad input) becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import sys

import typer

from models.errors import ArchoptError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Bayesian multi-objective optimization of LLM architectures.",
)


def _register_all() -> None:
    from . import bench, campaign, models, surrogate

    for module in (models, surrogate, campaign, bench):
        module.register(app)


_register_all()


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """Warnings as one ``warning: ...`` line on stderr (no source file, no code line)."""
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Returns the exit code (also used by tests)."""
    import warnings

    import click

    # typer 0.29 vendors click; its exceptions derive from the public typer.TyperException.
    click_errors: tuple[type[BaseException], ...] = (
        click.exceptions.ClickException,
        getattr(typer, "TyperException", click.ClickException),
    )
    warnings.formatwarning = _one_line_warning
    try:
        code = app(args=argv, standalone_mode=False)
    except ArchoptError as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except click_errors as exc:  # bad flags are bad input too
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"error: {' '.join(message.split())}", err=True)
        return 2
    except (KeyboardInterrupt, click.exceptions.Abort, typer.Abort):
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """setuptools console-script target."""
    sys.exit(main())

"""The ``llmrec`` command. Thin: parse, call the library, print; errors become exit codes."""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from llmrec import progress
from llmrec.cli import data, evaluate, jobs, ope, recommend, serve, train, versions
from llmrec.cli._extras import install_hint
from llmrec.errors import LlmrecError

app = typer.Typer(
    name="llmrec",
    help="llmrec: a recommender engine with language models first-class.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    if show:
        from llmrec import __version__

        typer.echo(f"llmrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="no progress, status lines or notes on stderr (results and errors still print)",
    ),
) -> None:
    """llmrec: a recommender engine with language models first-class."""
    _set_quiet(quiet)


def _set_quiet(quiet: bool) -> None:
    """Every command's stderr console, the progress bars and the service's info log; set on
    every call, so one quiet call in a process does not silence the next."""
    progress.QUIET = quiet
    for module in (data, evaluate, jobs, ope, recommend, serve, train, versions):
        console = getattr(module, "err", None)
        if isinstance(console, Console):
            console.quiet = quiet
    logging.getLogger("llmrec").setLevel(logging.WARNING if quiet else logging.NOTSET)


app.add_typer(data.app, name="data")
app.add_typer(jobs.app, name="jobs")
app.command("eval")(evaluate.eval_command)
app.command("train")(train.train_command)
app.command("recommend")(recommend.recommend_command)
app.command("serve")(serve.serve_command)
app.command("ope")(ope.ope_command)
app.command("ab")(versions.ab_command)
app.add_typer(versions.app, name="models")
app.add_typer(serve.keys_app, name="keys")

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1


def main() -> None:
    """Entry point: user errors print one line (exit 2); bugs print no stack trace by default."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        app(standalone_mode=False)
    except LlmrecError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)  # keeps 'llmrec[x]'
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as e:  # disk full, file too large, permissions: the machine's, not a bug
        where = f" ({e.filename})" if e.filename else ""
        what = escape(f"{e.strerror or type(e).__name__}{where}")
        err.print(f"[red]error:[/red] {what}", highlight=False)
        sys.exit(EXIT_INTERNAL)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # the stack trace is for developers, on request
        hint = install_hint(e) if isinstance(e, ModuleNotFoundError) else None
        if hint is not None and not os.environ.get("LLMREC_DEBUG"):
            err.print(f"[red]error:[/red] {escape(hint)}", highlight=False)
            sys.exit(EXIT_USER_ERROR)
        # typer raises its vendored click's exceptions (typer >= 0.20 has no click dependency):
        # a usage error shows itself; an abort (Ctrl-C at a prompt) exits 1
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        if os.environ.get("LLMREC_DEBUG"):
            raise
        err.print(
            f"[red]internal error:[/red] {escape(f'{type(e).__name__}: {e}')} "
            "(set LLMREC_DEBUG=1 for the stack trace)",
            highlight=False,
        )
        sys.exit(EXIT_INTERNAL)

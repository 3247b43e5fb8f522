"""The ``barkwatch`` command: thin wrappers that parse options, call the library, and print.

One module per group of commands (``detect``; ``model``: train, inspect; ``live``: listen, devices, record;
``service``: config, events, status, web; ``home``: label, calibrate, enrol, report), the options they share declared once
in ``options``. Heavy modules (torch, librosa, matplotlib) are imported inside the commands, so ``--help`` is
instant. Errors a user can fix are one line on stderr and exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import typer

from .. import __version__
from . import detect, home, hub, live, model, service

app = typer.Typer(
    help="Detect dog barks in audio: scan recordings, listen to a microphone as a service, and learn your own "
         "dog and home.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags show as flags (typer's boxes print "<bool>" beside them)
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"barkwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """barkwatch: a real-time bark detector."""


# In the order `barkwatch --help` lists them: what most people run first.
app.command()(detect.detect)
app.command()(live.listen)
app.command()(live.devices)
app.command("config")(service.config_command)
app.command()(service.events)
app.command()(service.status)
app.command()(model.train)
app.command()(model.inspect)
app.command("export-onnx")(model.export_onnx)
app.command()(live.record)
app.command()(home.label)
app.command()(home.calibrate)
app.command()(home.enrol)
app.command()(home.report)
app.command()(service.web)
app.command()(hub.hub)


def main() -> None:
    app()

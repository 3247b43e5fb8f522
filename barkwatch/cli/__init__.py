"""The ``barkwatch`` command: thin wrappers that parse options, call the library, and print.

One module per group of commands (``detect``; ``model``: train, inspect; ``live``: listen, devices, record;
``service``: config, events, status, web; ``home``: label, calibrate, enrol, report), the options they share declared once
in ``options``. Heavy modules (torch, librosa, matplotlib) are imported inside the commands, so ``--help`` is
instant. Errors a user can fix are one line on stderr and exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from . import detect, home, hub, live, model, service
from .options import EXIT_USAGE, INSTALL, Command, installed, missing_text


class _Typer(typer.Typer):
    """Every command gets ``options.Command``'s help: words, not Python's types."""

    def command(self, name=None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or Command, **kwargs)


app = _Typer(
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


# In the order `barkwatch --help` lists them: what most people run first. Each with a one-line summary for
# that list (typer would cut the docstring's first sentence off with "...").
app.command(short_help="Scan recordings for barks.")(detect.detect)
app.command(short_help="Report each bark from a microphone or a stream as it happens.")(live.listen)
app.command(short_help="List the inputs --device can name.")(live.devices)
app.command("config", short_help="Show the settings in effect and where each came from.")(
    service.config_command)
app.command(short_help="Show the barks in the event log, or follow new ones.")(service.events)
app.command(short_help="Is the service listening? Its input, barks today, the last one.")(service.status)
app.command(short_help="Learn a model from recordings and export it as one file.")(model.train)
app.command(short_help="Show what is in a model file.")(model.inspect)
app.command("export-onnx", short_help="Export a model file to run on ONNX Runtime, without torch.")(
    model.export_onnx)
app.command(short_help="Keep what stands out from a room, as clips.")(live.record)
app.command(short_help="Label clips in the terminal: my dog, other dog, not a bark.")(home.label)
app.command(short_help="Choose the threshold for a false-alarm budget in this home.")(home.calibrate)
app.command(short_help="Learn this home and this dog: record, label, train, calibrate.")(home.enrol)
app.command(short_help="Barks per day and hour from the event log, as an HTML page.")(home.report)
app.command(short_help="Serve the home's web page: barks, history, clips, labelling.")(service.web)
app.command(short_help="Gather every listener's barks over MQTT into one database and one set of pages.")(
    hub.hub)


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as e:
        # An optional dependency a command reached without checking for it first (``options.needs``): the
        # same one line, not a traceback. Anything else missing is a broken install and keeps its traceback.
        module = (e.name or "").partition(".")[0]
        if module not in INSTALL or installed(module):
            raise
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "barkwatch")
        typer.echo(f"barkwatch: error: {missing_text(command, [module])}", err=True)
        sys.exit(EXIT_USAGE)

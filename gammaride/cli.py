"""The ``gammaride`` command. Thin: each subcommand lives in ``gammaride.commands.<name>``
with ``add_arguments(parser)`` and ``run(args) -> int``; this module only dispatches and
turns domain errors into one-line messages and exit codes.

Start-up is cheap: every command is listed from ``COMMANDS`` without importing it, and only
the command named on the command line is imported (its module keeps heavy libraries inside
``run``), so ``gammaride --version`` and ``gammaride COMMAND --help`` load no pandas, DuckDB,
statsmodels or alpaca-py."""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from gammaride import __version__
from gammaride.errors import GammarideError, JournalError

# (command, module, one-line help). Order is the order of ``gammaride --help``.
COMMANDS = [
    ("scan", "gammaride.commands.scan", "run the live scanner (paper by default)"),
    ("replay", "gammaride.commands.replay", "replay bars files through the rules into the journal"),
    ("fetch", "gammaride.commands.fetch", "download Alpaca bars into the local history cache"),
    ("calibrate", "gammaride.commands.calibrate", "fit Phase 2 exits from the journal"),
    ("report", "gammaride.commands.report", "write the HTML win-rate report"),
    ("demo", "gammaride.commands.demo", "offline scan + replay + calibrate + report, no keys"),
    ("check", "gammaride.commands.check", "the pre-run checklist"),
    ("serve", "gammaride.commands.serve", "run the offline Alpaca-compatible server"),
    ("journal", "gammaride.commands.journal", "summarize what the journal holds"),
]


def command_name(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first word that is not an option (the
    top-level parser has only ``--help`` and ``--version``, which take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, naming where the help is, and exit 2."""

    command_prog: str | None = None  # the top parser's errors about a command's words name it

    def error(self, message: str) -> NoReturn:
        where = self.command_prog or self.prog  # 'gammaride' or 'gammaride fetch'
        print(f"{where}: error: {' '.join(message.split())}; see '{where} --help'", file=sys.stderr, flush=True)
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed; only ``command`` (if any) is imported and
    given its arguments, description and ``run``."""
    parser = Parser(
        prog="gammaride",
        description="0DTE dealer-gamma scanner for Alpaca: scan, journal, calibrate, report.",
        epilog="Example: gammaride demo",
    )
    parser.add_argument("--version", action="version", version=f"gammaride {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        if importlib.util.find_spec(module_name) is None:
            continue  # command not part of this build
        if name != command:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
        parser.command_prog = p.prog
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_name(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return code
    except GammarideError as exc:
        return _fail(args.command, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print(f"gammaride {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of the output went away (`gammaride journal | head`): stop quietly, and
        # keep Python's own flush at exit from failing on the closed pipe too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("GAMMARIDE_TRACEBACK"):
            raise
        text, code = unexpected_error(exc)
        return _fail(args.command, text, code)


def run() -> NoReturn:
    """The ``gammaride`` console script and ``python -m gammaride``: ``main()``, then the
    process ends. Everything the command opened is closed by then, so the interpreter's final
    garbage collection would only walk the millions of objects pandas, pyarrow and DuckDB
    allocated at import, all about to be freed with the process: 0.2 s of CPU on every
    command. Freezing them first skips that walk (``benchmarks/startup.py`` measures it).
    Only objects caught in reference cycles are left to the operating system: what the
    command wrote (journal, report, output) is closed and flushed before ``main`` returns."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _fail(command: str, message: str, code: int) -> int:
    """Print the error as exactly one line on stderr; return its exit code."""
    print(f"gammaride {command}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code


def unexpected_error(exc: BaseException) -> tuple[str, int]:
    """A one-line message and exit code for an exception no domain error caught: the
    journal's database failing (full disk, damaged file), the operating system refusing a
    file, or a bug."""
    text = " ".join(str(exc).split())[:400]
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.Error):
        return (f"the journal failed ({type(exc).__name__}: {text}); nothing more was written. "
                "Check the disk has space and the file is a gammaride journal", JournalError.exit_code)
    if isinstance(exc, MemoryError):
        return "out of memory; pass fewer or smaller files", 1
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or text}{where}; check the path, its permissions and free space", 1
    return (f"unexpected {type(exc).__name__}: {text}. This is a bug in gammaride: please report "
            "it with the command line (GAMMARIDE_TRACEBACK=1 shows the traceback)", 70)


if __name__ == "__main__":  # pragma: no cover
    run()

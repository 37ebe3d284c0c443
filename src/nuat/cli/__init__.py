"""The ``nuat`` command line: parse, validate, call the library. Nothing else lives here.

Bad input is reported as one line on stderr with exit code 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from collections.abc import Sequence

from nuat.errors import RunWarning, UsageError

SUBCOMMANDS = ("train", "eval", "sanity", "bench")
#: OSErrors that mean a bad path on the command line (exit 2); others (a full disk, I/O errors)
#: are failures of the machine and keep their traceback
PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS,
               errno.ENAMETOOLONG, errno.ELOOP}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: the reason and the path(s), e.g.
    ``No such file or directory: /proc/x/config.json``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    line = f"{reason}: {' -> '.join(paths)}" if paths else reason
    return " ".join(line.split())


def build_parser() -> argparse.ArgumentParser:
    import importlib

    import nuat

    parser = OneLineParser(prog="nuat", description="Efficient adversarial training (NuAT) for PyTorch.")
    parser.add_argument("--version", action="version", version=f"nuat {nuat.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"nuat.cli.{name}_cmd").add_parser(sub)
    return parser


def _show_run_warnings_plainly(command: str) -> None:
    """nuat's own warnings (:class:`RunWarning`) as one line, without the source line Python adds;
    other warnings keep Python's format. Call inside ``warnings.catch_warnings()``."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, RunWarning):
            sys.stderr.write(f"nuat {command}: warning: {message}\n")
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a usage error: the help goes to stderr, like argparse's own errors
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            _show_run_warnings_plainly(args.command)
            return int(args.run(args) or 0)
    except UsageError as exc:
        sys.stderr.write(f"nuat {args.command}: error: {exc}\n")
        return 2
    except OSError as exc:  # last resort: a path the checks before the work did not catch
        if exc.errno not in PATH_ERRNOS:
            raise
        sys.stderr.write(f"nuat {args.command}: error: {os_error_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"nuat {args.command}: interrupted\n")
        return 130

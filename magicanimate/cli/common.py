"""What every command line shares: error and interrupt conventions, logging, threads."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

from magicanimate.config.cli import CliParser, parse_command_line
from magicanimate.errors import MagicAnimateError

INTERRUPTED = 130
TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds exactly as on Ctrl-C (temporary files go)."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (as SIGINT raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(run: Callable[[argparse.Namespace], int], parser: CliParser, argv: Optional[Sequence[str]] = None,
             *, interrupted: str = "interrupted; nothing written") -> int:
    """Parse, run, and turn the user's errors and interruptions into one line and an exit status."""
    args = parse_command_line(parser, argv)
    with terminate_as_interrupt():
        try:
            return run(args)
        except MagicAnimateError as exc:
            _close_progress_bars()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            _close_progress_bars()
            print(interrupted, file=sys.stderr)
            return TERMINATED if isinstance(exc, Terminated) else INTERRUPTED


def _close_progress_bars() -> None:
    """An open tqdm bar leaves the cursor on its line: close them so the message starts a line of its own."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    from magicanimate.utils.devices import MAX_DEFAULT_THREADS

    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: half the available cores, at most "
                             f"{MAX_DEFAULT_THREADS}; 1 on a busy shared machine)")

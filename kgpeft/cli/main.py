"""``kgpeft``'s entry point: run a command; a user error is one line on standard error and exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from kgpeft.cli.parser import build_parser
from kgpeft.configuration import ConfigError
from kgpeft.errors import KGFileNotFoundError, KGPeftError
from kgpeft.training.checkpoints import find_checkpoint


def check_options(args: argparse.Namespace) -> None:
    """The command-line-only numbers in range (the config sections check their own)."""
    for dest, least in (("max_facts", 0), ("threads", 1), ("top", 1)):
        value = getattr(args, dest, None)
        if value is not None and value < least:
            raise ConfigError(f"--{dest.replace('_', '-')} should be at least {least}, got {value}.")


def interrupted(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """What to print when Ctrl-C stops ``args.command``: for a training run, where it stopped and how to resume."""
    config = getattr(args, "job_config", None)
    if config is None or args.command not in ("train", "demo"):
        return f"kgpeft {args.command}: interrupted."
    folder = Path(config.training.output_dir)
    found = []
    for variant in config.variants:
        try:
            found.append(find_checkpoint("latest", folder / variant.name))
        except KGFileNotFoundError:
            continue
    if not found:
        return (
            f"kgpeft {args.command}: interrupted before any checkpoint was written in {folder} (set "
            "`training.save_steps` to write them); run the same command to start over."
        )
    last = max(found, key=lambda p: p.stat().st_mtime)
    step = last.name.rsplit("-", 1)[-1]
    command = shlex.join(["kgpeft", *[a for a in argv if a != "--resume"], "--resume"])
    return f"kgpeft {args.command}: interrupted; last checkpoint {last} (step {step}). Resume with: {command}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command: exit status 0 when done, 2 on a user error (one line on standard error), 130 on Ctrl-C,
    141 (as a process killed by SIGPIPE) when standard output is closed early (``kgpeft link ... | head -1``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        check_options(args)
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
    except KGPeftError as e:
        message = " ".join(line.strip() for line in str(e).splitlines())
        print(f"kgpeft {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{interrupted(args, argv)}", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        _discard_stdout()
        return 128 + getattr(signal, "SIGPIPE", 13)
    return 0


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit raises no second BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (captured in tests): nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

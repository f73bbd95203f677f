"""The ``kgpeft`` command line: ``kgpeft train | evaluate | predict | explain | link | demo | info | kge | kg``.

A config file holds the same settings as the command-line options, in the sections of its
config dataclass (``retrieval: {max_candidates: 3}``); options given on the command line win.
An unknown key or a value of the wrong type is an error naming the key.

- :mod:`~kgpeft.cli.main`: :func:`main`, which runs a command and turns a user error into one line.
- :mod:`~kgpeft.cli.parser`: the options, one per config field where a config dataclass has them.
- :mod:`~kgpeft.cli.job`: the job commands (``train``, ``evaluate``, ``predict``, ``explain``, ``demo``, ``info``).
- :mod:`~kgpeft.cli.link`: ``kgpeft link`` and what it shares with the demo.
- :mod:`~kgpeft.cli.kge`: ``kgpeft kge train | evaluate`` (:mod:`kgpeft.kge.job`).
- :mod:`~kgpeft.cli.kg`: ``kgpeft kg import`` (a KG's files into a saved KG folder, and its card) and
  ``kgpeft kg edit`` (:meth:`kgpeft.graph.KnowledgeGraph.edit` from a file of edits).
"""

from kgpeft.cli.main import main
from kgpeft.cli.parser import build_parser

__all__ = ["build_parser", "main"]

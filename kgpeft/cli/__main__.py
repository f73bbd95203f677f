"""``python -m kgpeft.cli``: the ``kgpeft`` command."""

import sys

from kgpeft.cli.main import main

sys.exit(main())

"""``python -m occfau_lib``: the command line of :mod:`occfau_lib.cli`."""
import sys

from .cli import main

sys.exit(main())

"""``python -m mu_lib``: the ``mu`` command without the console script on PATH."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

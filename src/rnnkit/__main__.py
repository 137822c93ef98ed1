"""``python -m rnnkit ...``: the ``rnnkit`` command (also what ``torchrun ... -m rnnkit ...`` starts on each process)."""

import sys

from rnnkit.cli import main

if __name__ == "__main__":
    sys.exit(main())

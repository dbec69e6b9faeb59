"""``python -m campusnav``: the command line as a module, so launchers such as ``torchrun -m campusnav`` start it."""

import sys

from campusnav.cli import main

if __name__ == "__main__":
    sys.exit(main())

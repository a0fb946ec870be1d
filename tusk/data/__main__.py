"""``python -m tusk.data mnist|prepare ...`` (see :mod:`tusk.data.cli`)."""
import sys

from .cli import main

sys.exit(main())

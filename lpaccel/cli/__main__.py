"""``python -m lpaccel.cli``: the ``lpaccel`` command line."""

import sys

from . import main

sys.exit(main())

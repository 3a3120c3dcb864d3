"""``python -m scorecast.cli``: the command line (what ``ServerProcess`` starts servers with)."""

import sys

from .commands import main

sys.exit(main())

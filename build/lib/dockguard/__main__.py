"""python -m dockguard: the `dockguard` command."""

import sys

from dockguard.cli import main

sys.exit(main())

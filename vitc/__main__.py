"""``python -m vitc``: the same as the ``vitc`` command."""

import sys

from vitc.cli import main

sys.exit(main())

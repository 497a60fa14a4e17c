"""`python -m auditor ...`: the same as the `auditor` console script."""

import sys

from .cli import main

sys.exit(main())

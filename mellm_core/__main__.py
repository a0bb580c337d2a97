"""`python -m mellm_core` runs the `mellm` command."""

import sys

from mellm_core.cli import main

sys.exit(main())

"""`python -m camlang` runs the command line."""

import sys

from camlang.cli import main

sys.exit(main())

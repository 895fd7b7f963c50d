"""python -m export_check EXPORT_DIR: print every problem of an export directory; exit 1 if any."""

import sys

from export_check import main

sys.exit(main(sys.argv[1:]))

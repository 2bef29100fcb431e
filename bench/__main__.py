"""`python -m bench --scale small`: see bench/runner.py and bench/README.md."""

import sys

from bench.runner import main

sys.exit(main())

import sys

from lodabench.results.reports import main

sys.exit(main())

import sys

from clinview.cli import main

sys.exit(main())

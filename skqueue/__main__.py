import sys

from skqueue.cli import main

sys.exit(main())

import sys

from anil.cli import main

sys.exit(main())

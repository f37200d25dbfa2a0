import sys

from revmodel.cli import main

sys.exit(main())

import sys

from gammaride.cli import main

sys.exit(main())

import sys

from vesselflow.cli import main

sys.exit(main())

import sys

from qc_station.cli import main

sys.exit(main())

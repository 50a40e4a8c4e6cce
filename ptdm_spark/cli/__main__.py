"""``python -m ptdm_spark.cli`` = ``ptdm``."""

import sys

from ptdm_spark.cli import main

sys.exit(main())

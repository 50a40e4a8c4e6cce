"""spark-submit entry point of `ptdm ingest`: same arguments, same code.

    spark-submit --py-files dist/ptdm_spark.zip jobs/ingest.py [ARGS...]   (see scripts/submit.sh)
"""

import sys

from ptdm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))

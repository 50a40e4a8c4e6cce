"""spark-submit entry point of `ptdm run`: same arguments, same code.

    spark-submit --py-files dist/ptdm_spark.zip jobs/run.py [ARGS...]   (see scripts/submit.sh)
"""

import sys

from ptdm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))

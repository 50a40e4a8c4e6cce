"""spark-submit entry point of `ptdm process`: same arguments, same code.

    spark-submit --py-files dist/ptdm_spark.zip jobs/process.py [ARGS...]   (see scripts/submit.sh)
"""

import sys

from ptdm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["process", *sys.argv[1:]]))

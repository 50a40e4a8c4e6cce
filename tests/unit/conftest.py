import pytest

from ptdm_spark.config import load_config
from ptdm_spark.imaging.pipeline import Params


@pytest.fixture(scope="session")
def params() -> Params:
    return Params.from_config(load_config().process)

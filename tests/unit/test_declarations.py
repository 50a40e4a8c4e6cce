"""Column lists declared in two places (the Spark-free image code and the Spark schemas) are the
same lists: a column added to one and not the other would be dropped or null without an error."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_process_image_fields_are_the_processed_schema():
    from ptdm_spark import schemas
    from ptdm_spark.imaging.pipeline import FIELDS

    assert [f.name for f in schemas.PROCESSED.fields] == ["image_id", *FIELDS]


def test_passthrough_columns_are_what_processed_out_adds():
    from ptdm_spark import schemas
    from ptdm_spark.transforms.process import PASSTHROUGH

    n = len(schemas.PROCESSED.fields)
    assert schemas.PROCESSED_OUT.fields[:n] == schemas.PROCESSED.fields
    assert tuple(f.name for f in schemas.PROCESSED_OUT.fields[n:]) == PASSTHROUGH


def test_every_passthrough_column_is_kept_by_pending():
    """``transforms.process.pending`` makes the rows the UDF passes through: it must produce each."""
    import inspect

    from ptdm_spark.transforms import process

    src = inspect.getsource(process.pending)
    missing = [c for c in process.PASSTHROUGH if f'"{c}"' not in src]
    assert not missing, missing


def test_object_columns_are_the_objects_schema():
    """The source-object records the workers yield (archives, arrays, loose files) have the
    columns of ``schemas.OBJECTS``, in its order."""
    from ptdm_spark import schemas, udfs
    from ptdm_spark.io import archives

    assert archives.OBJECT_COLUMNS == tuple(f.name for f in schemas.OBJECTS.fields)
    assert udfs.OBJECT_COLUMNS is archives.OBJECT_COLUMNS
    assert tuple(archives._record("u", "tar", size_bytes=3)) == archives.OBJECT_COLUMNS


def test_stage_dispatch_names_match():
    """The CLI's stage names and the stages callable by name: every stage after ingest."""
    from ptdm_spark import stages
    from ptdm_spark.cli import pipeline

    assert pipeline.STAGES[0] == "ingest" and set(pipeline.STAGES[1:]) == set(stages.STAGES)

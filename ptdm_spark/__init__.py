"""ptdm-spark: pre-training data management for image datasets on Spark and Delta Lake."""

__version__ = "0.1.0"

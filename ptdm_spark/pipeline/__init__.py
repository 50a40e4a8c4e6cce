"""The jobs: the stages and the plumbing every job shares (``pipeline.job``)."""

"""Dagster run tags that change how the assets behave (a leaf module: the launcher sets
them, pipelines/defs/ reads them)."""

CACHE_TAG = "rung/cache"  # "use" (default), "refresh": recompute and store; "off": store nothing
REPRODUCES_TAG = "rung/reproduces"  # the MLflow run a reproduction re-runs

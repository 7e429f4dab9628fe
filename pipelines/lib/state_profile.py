"""Where rung's shared state lives: the MLflow tracking/registry store, the DVC remote and
the Dagster instance's storage. Read from the environment; unset means the embedded
default of one checkout (nothing to run, nothing to configure):

- RUNG_MLFLOW_URI: the tracking + registry store. Default sqlite:///<state>/mlruns/mlflow.db
  with artifacts in <state>/mlruns/artifacts; shared: http(s)://<mlflow server>, whose
  artifacts the server stores and serves (`mlflow server --serve-artifacts`).
- RUNG_DVC_REMOTE_URL (+ RUNG_DVC_ENDPOINT): where data versions are pushed and pulled.
  Default the folder ~/.cache/rung/dvc-remote; shared: s3://bucket/prefix and the
  S3-compatible store's endpoint URL (or any URL DVC knows, without the endpoint).
- RUNG_DAGSTER_PG_URL: Dagster's run, event-log and schedule storage. Default files in
  <state>/.dagster/; shared: postgresql+psycopg2://user:password@host:port/db (dagster-postgres).

Credentials never go into a tracked file, a log, a param or a tag: the S3 keys are
read by DVC (boto) from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the Dagster
instance's dagster.yaml names the variable RUNG_DAGSTER_PG_URL, not its value; an
MLflow server with `--serve-artifacts` means workers need no bucket keys at all.
`describe()` shows the profile with passwords masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pipelines import paths

MLFLOW_URI_ENV = "RUNG_MLFLOW_URI"
DVC_REMOTE_URL_ENV = "RUNG_DVC_REMOTE_URL"
DVC_ENDPOINT_ENV = "RUNG_DVC_ENDPOINT"
DAGSTER_PG_URL_ENV = "RUNG_DAGSTER_PG_URL"
VARIABLES = (MLFLOW_URI_ENV, DVC_REMOTE_URL_ENV, DVC_ENDPOINT_ENV, DAGSTER_PG_URL_ENV)
# DVC remote names in the checkout's untracked .dvc/config.local
LOCAL_REMOTE = "local"
SHARED_REMOTE = "shared"
# The first line of a dagster.yaml rung wrote (and may rewrite when the profile changes).
DAGSTER_YAML_HEADER = "# Written by rung"


class StateProfileError(ValueError):
    """A profile variable is set wrongly; the message names it and what to set."""


@dataclass(frozen=True)
class DvcRemote:
    name: str
    url: str
    endpoint: str | None = None

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL_REMOTE


def _get(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "").strip() or None


def mlflow_tracking_uri(environ: Mapping[str, str] = os.environ) -> str:
    """The MLflow tracking and registry URI: RUNG_MLFLOW_URI, else the embedded sqlite file.
    A URI with user:password in it is refused: it would reach the trainer's config (an
    MLflow artifact) and its environment."""
    uri = _get(environ, MLFLOW_URI_ENV)
    if uri and urlsplit(uri).password:
        raise StateProfileError(
            f"{MLFLOW_URI_ENV} must not carry credentials: give them as "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (MLflow reads them from "
            "the environment) so they are never written anywhere"
        )
    return uri or paths.mlflow_tracking_uri()


def mlflow_is_server(uri: str) -> bool:
    """True for an MLflow tracking server (it decides where artifacts go)."""
    return urlsplit(uri).scheme in ("http", "https")


def experiment_artifact_location(environ: Mapping[str, str] = os.environ) -> str | None:
    """Where a new experiment's artifacts go: None for a server (its own artifact store, e.g.
    `mlflow-artifacts:/` with --serve-artifacts); the state dir's folder for a database the
    client opens itself (the embedded sqlite file), as before."""
    if mlflow_is_server(mlflow_tracking_uri(environ)):
        return None
    return paths.mlflow_artifacts_dir().as_uri()


def dvc_remote(environ: Mapping[str, str] = os.environ) -> DvcRemote:
    """The DVC remote data versions are pushed to and pulled from."""
    url, endpoint = _get(environ, DVC_REMOTE_URL_ENV), _get(environ, DVC_ENDPOINT_ENV)
    if url is None:
        if endpoint:
            raise StateProfileError(
                f"{DVC_ENDPOINT_ENV} is set but {DVC_REMOTE_URL_ENV} is not: set the remote's "
                "URL too (e.g. s3://rung/dvc)"
            )
        return DvcRemote(LOCAL_REMOTE, str(paths.dvc_remote_dir()))
    if urlsplit(url).password or (endpoint and urlsplit(endpoint).password):
        raise StateProfileError(
            f"{DVC_REMOTE_URL_ENV}/{DVC_ENDPOINT_ENV} must not carry credentials: give the "
            "keys as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (DVC reads them from the "
            "environment) so they are never written to a file"
        )
    return DvcRemote(SHARED_REMOTE, url, endpoint)


def dagster_pg_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """Dagster's storage URL, as SQLAlchemy reads it: the driver is named in the scheme
    (SQLAlchemy 2.1 would take a bare postgresql:// to mean psycopg 3, not installed)."""
    url = _get(environ, DAGSTER_PG_URL_ENV)
    if url and urlsplit(url).scheme != "postgresql+psycopg2":
        raise StateProfileError(
            f"{DAGSTER_PG_URL_ENV} must be a postgresql+psycopg2://user:password@host:port/db "
            "URL (name the driver: psycopg2 is the one installed)"
        )
    return url


def dagster_yaml(environ: Mapping[str, str] = os.environ) -> str:
    """The Dagster instance config rung writes into DAGSTER_HOME. With PostgreSQL, runs,
    event logs and schedules go there; the file names the variable, never the password."""
    text = f"{DAGSTER_YAML_HEADER}. Local state for the Dagster UI and CLI runs.\n"
    text += "telemetry:\n  enabled: false\n"
    if dagster_pg_url(environ):
        text = text.replace("Local state", f"Shared state (PostgreSQL, ${DAGSTER_PG_URL_ENV})")
        text += f"storage:\n  postgres:\n    postgres_url:\n      env: {DAGSTER_PG_URL_ENV}\n"
    return text


def is_shared(environ: Mapping[str, str] = os.environ) -> bool:
    return any(_get(environ, name) for name in VARIABLES)


def mask_password(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def describe(environ: Mapping[str, str] = os.environ) -> str:
    """Where each piece of state lives, one line each, passwords masked."""
    remote = dvc_remote(environ)
    pg = dagster_pg_url(environ)
    uri = mlflow_tracking_uri(environ)
    artifacts = experiment_artifact_location(environ) or "served by the tracking server"
    return "\n".join(
        [
            f"MLflow tracking + registry: {mask_password(uri)} (artifacts: {artifacts})",
            f"DVC remote '{remote.name}': {mask_password(remote.url)}"
            + (f" (endpoint {remote.endpoint})" if remote.endpoint else ""),
            f"Dagster instance: {paths.dagster_home()}"
            + (f", storage in PostgreSQL {mask_password(pg)}" if pg else " (local storage)"),
        ]
    )

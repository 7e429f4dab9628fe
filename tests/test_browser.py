"""The Dagster and MLflow UIs, in a real browser, against real servers and real runs.

`rung ui` and `rung mlflow` serve the test state on free loopback ports; Chromium
(Debian's, driven by Playwright) clicks through them. One recipe partition is
launched from the Dagster UI (address-no-ship: one training step, an honest
NO-SHIP verdict), a crash is launched in process, and the shared `tiny_run`
(tests/conftest.py: a SHIP, registered) gives MLflow a second run to compare and a
registered model. Every test saves a screenshot (tests/browser.py says where).
"""

from __future__ import annotations

import re
import time

import pytest
from browser import VIEWPORT, WIDE_VIEWPORT, launch_chromium, save_screenshot, start_server

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (requirements/dev.lock has it)"
)
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# The graph's backbone; the job may hold more (the UI must show those too).
CORE_ASSETS = {
    "base_model",
    "raw_data",
    "cleaned_data",
    "split",
    "training_set",
    "training_run",
    "evaluation",
    "registered_adapter",
}
CORE_CHECKS = {
    ("cleaned_data", "schema_valid"),
    ("cleaned_data", "no_duplicates"),
    ("split", "no_leakage"),
    ("split", "class_balance"),
    ("split", "heldout_size"),
    ("evaluation", "ship_gate"),
}
JOB_PATH = "/locations/pipelines.definitions/jobs/fine_tune"
UI_RECIPE = "address-no-ship"  # one training step; the gate refuses it
CRASH_RECIPE = "address-broken-model"  # garbage weights: Axolotl crashes loading them
RUN_TIMEOUT_S = 15 * 60
# Dismissed on a fresh profile: Dagster's newsletter dialog, MLflow's assistant panel.
QUIET_FIRST_VISIT = """
window.localStorage.setItem("communityNux", "1");
window.localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
window.localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
"""


def shown(scope, text, exact: bool = False):
    """The first *visible* element with this text (the UIs keep hidden copies of labels
    to measure them)."""
    return scope.get_by_text(text, exact=exact).filter(visible=True).first


# --- servers, browser, pages -------------------------------------------------------


@pytest.fixture(scope="module")
def dagster_ui():
    server = start_server("dagster", "ui", "/server_info")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow_ui():
    server = start_server("mlflow", "mlflow", "/health")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _new_page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(QUIET_FIRST_VISIT)
    context.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    return context, context.new_page()


@pytest.fixture
def page(browser):
    context, page = _new_page(browser)
    yield page
    context.close()


def _instance():
    import dagster as dg

    from pipelines.launch import ensure_dagster_home

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def _wait_for_run_end(run_id: str, timeout: float = RUN_TIMEOUT_S):
    instance = _instance()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        time.sleep(5)
    raise AssertionError(f"Dagster run {run_id} did not finish in {timeout:.0f} s")


def _partition_runs(recipe_id: str) -> set[str]:
    import dagster as dg

    runs = _instance().get_runs(dg.RunsFilter(tags={"dagster/partition": recipe_id}))
    return {run.run_id for run in runs}


@pytest.fixture(scope="module")
def ui_run(browser, dagster_ui):
    """address-no-ship launched from the UI: Materialize all -> partition -> Launch."""
    before = _partition_runs(UI_RECIPE)
    context, page = _new_page(browser)
    try:
        page.goto(dagster_ui.url + JOB_PATH)
        page.get_by_role("button", name="Materialize all…").click(timeout=120_000)
        dialog = page.get_by_role("dialog")
        expect(
            dialog.get_by_text(re.compile(r"^Launch runs to materialize \d+ assets"))
        ).to_be_visible()
        dialog.get_by_text("Select a partition or create one").click()
        page.get_by_role("menuitem", name=UI_RECIPE).click()
        dialog.get_by_text(re.compile(r"^Launch runs to materialize")).click()  # close the menu
        expect(page.get_by_role("menuitem")).to_have_count(0)
        save_screenshot(page, "dagster-launch-partition")
        dialog.get_by_role("button", name="Launch 1 run").click()
        expect(dialog).to_be_hidden()
        deadline = time.monotonic() + 120
        while not (launched := _partition_runs(UI_RECIPE) - before):
            assert time.monotonic() < deadline, "no run appeared after clicking Launch"
            time.sleep(1)
    finally:
        context.close()
    (run_id,) = launched
    return _wait_for_run_end(run_id)


@pytest.fixture(scope="module")
def crash_run():
    """The crash recipe, launched in process (cheapest): the UI must still show it red."""
    from pipelines.launch import run_recipe
    from pipelines.recipe import load_recipe, recipe_path

    outcome = run_recipe(load_recipe(recipe_path(CRASH_RECIPE)))
    assert not outcome.success
    return outcome


# --- Dagster -----------------------------------------------------------------------


def test_a_partition_launched_from_the_ui_succeeds_with_its_verdict_and_ladder(
    page, dagster_ui, ui_run
):
    import dagster as dg

    assert ui_run.status == dg.DagsterRunStatus.SUCCESS, "a NO-SHIP verdict is a successful run"
    page.goto(f"{dagster_ui.url}/runs/{ui_run.run_id}")
    page.get_by_text("Hide navigation").click()
    expect(shown(page, "RUN_SUCCESS")).to_be_visible()
    expect(shown(page, "Success", exact=True)).to_be_visible()  # the run's status tag
    save_screenshot(page, "dagster-run-success")

    # the run's evaluation event, opened whole: verdict, reasons, the ladder table (a
    # wider window: the dialog grows with it, and the ladder has a column per cost)
    page.set_viewport_size(WIDE_VIEWPORT)
    page.get_by_placeholder("Filter…").fill("step:evaluation type:ASSET_MATERIALIZATION")
    page.keyboard.press("Enter")
    shown(page, "Materialized value evaluation.").hover()
    shown(page, "View full message").click()
    event = page.get_by_role("dialog")
    expect(event.get_by_text("NO-SHIP", exact=True)).to_be_visible()
    ladder = event.locator("table").filter(has_text="candidate").filter(has_text="tuned")
    expect(ladder.last).to_be_visible()
    for candidate in ("baseline", "few_shot", "tuned"):
        expect(ladder.last.get_by_text(candidate, exact=True)).to_be_visible()
    save_screenshot(page, "dagster-run-ladder", readme=True)
    page.set_viewport_size(VIEWPORT)

    # the asset's own page: its metadata starts with the verdict and its reasons
    page.goto(f"{dagster_ui.url}/assets/evaluation?partition={UI_RECIPE}")
    expect(shown(page, "verdict_reasons")).to_be_visible()
    keys = [k.strip() for k in page.get_by_role("row").locator("td:first-child").all_inner_texts()]
    assert keys[keys.index("Key") + 1 :][:2] == ["verdict", "verdict_reasons"], keys
    save_screenshot(page, "dagster-evaluation-metadata")

    # the ship gate: a WARN-severity check whose description leads with the verdict
    page.goto(f"{dagster_ui.url}/assets/evaluation?view=checks")
    expect(shown(page, "ship_gate")).to_be_visible()
    expect(shown(page, re.compile(r"^NO-SHIP: "))).to_be_visible()
    save_screenshot(page, "dagster-ship-gate")


def _job_graph() -> tuple[set[str], dict[str, set[str]], set[str]]:
    """The fine_tune job's assets, their checks, and the asset groups they belong to."""
    from pipelines.definitions import defs

    graph = defs.resolve_job_def("fine_tune").asset_layer.asset_graph
    keys = graph.get_all_asset_keys()
    checks: dict[str, set[str]] = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    groups = {graph.get(key).group_name for key in keys}
    return {key.to_user_string() for key in keys}, checks, groups


def test_the_job_graph_shows_every_asset_and_the_checks(page, dagster_ui):
    assets, checks, groups = _job_graph()
    assert assets >= CORE_ASSETS
    assert {(asset, name) for asset, names in checks.items() for name in names} >= CORE_CHECKS
    # The job's asset group page fits the whole graph in the window (the job page keeps
    # its zoom and leaves the nodes outside the window unrendered).
    (group,) = groups
    page.goto(f"{dagster_ui.url}/locations/pipelines.definitions/asset-groups/{group}")
    nodes = page.locator("[class*='AssetNode_assetName']")  # the graph's node labels
    for asset in sorted(assets):
        expect(nodes.filter(has_text=re.compile(f"^{asset}$")).first).to_be_visible(timeout=120_000)
    assert set(nodes.all_inner_texts()) >= assets
    page.get_by_text("Hide navigation").click()
    save_screenshot(page, "dagster-asset-graph", readme=True)
    for asset, names in sorted(checks.items()):
        page.goto(f"{dagster_ui.url}/assets/{asset}?view=checks")
        expect(page.get_by_text(f"Checks ({len(names)})")).to_be_visible()
        for name in sorted(names):
            expect(shown(page, name, exact=True)).to_be_visible()
        save_screenshot(page, f"dagster-checks-{asset}")


def _step_failures(run_id: str) -> dict[str, str]:
    """Failed step -> the first line of what Dagster recorded as its cause."""
    import dagster as dg

    failures = {}
    for event in _instance().all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = event.dagster_event.step_failure_data
        described = data.user_failure_data.description if data.user_failure_data else None
        text = described or (data.error.message if data.error else "")
        failures[event.step_key] = text.strip().splitlines()[0][:80]
    return failures


def test_a_crash_shows_as_a_failed_run(page, dagster_ui, crash_run):
    failures = _step_failures(crash_run.dagster_run_id)
    assert failures, "the crash recipe's run recorded no step failure"
    page.goto(f"{dagster_ui.url}/runs/{crash_run.dagster_run_id}")
    page.get_by_text("Hide navigation").click()
    expect(shown(page, "RUN_FAILURE")).to_be_visible()
    expect(shown(page, "Failure", exact=True)).to_be_visible()  # the run's status tag
    expect(shown(page, f"Errored ({len(failures)})")).to_be_visible()
    page.get_by_placeholder("Filter…").fill("type:STEP_FAILURE")
    page.keyboard.press("Enter")
    expect(shown(page, "STEP_FAILURE", exact=True)).to_be_visible()
    for step, cause in failures.items():
        expect(shown(page, step, exact=True)).to_be_visible()
        expect(shown(page, cause)).to_be_visible()
    save_screenshot(page, "dagster-run-failure")


CHECK_FAILS_RECIPE = "address-heldout-too-small"  # split.heldout_size fails for it alone


@pytest.fixture(scope="module")
def data_checks_runs():
    """`rung check` of two recipes: one whose split checks pass, one whose heldout_size
    fails (data stages only: seconds)."""
    from pipelines.cli import DATA_ASSETS
    from pipelines.launch import run_recipe
    from pipelines.recipe import load_recipe, recipe_path

    healthy = run_recipe(load_recipe(recipe_path(UI_RECIPE)), assets=DATA_ASSETS)
    failing = run_recipe(load_recipe(recipe_path(CHECK_FAILS_RECIPE)), assets=DATA_ASSETS)
    assert healthy.success and not failing.success
    return healthy, failing


def test_a_check_failing_in_one_partition_leaves_the_others_passed(
    page, dagster_ui, data_checks_runs
):
    """Checks are partitioned like their assets: the check's Partitions tab shows each
    recipe's own result (the check list shows the latest execution, of any partition)."""
    page.goto(f"{dagster_ui.url}/assets/split?view=checks&checkDetail=heldout_size")
    expect(shown(page, "heldout_size")).to_be_visible()
    page.locator("button[role=tab]").filter(has_text="Partitions").click()
    page.set_viewport_size(WIDE_VIEWPORT)
    # each partition's own result: its counters and the check's description for it
    for recipe_id, failed, summary in (
        (UI_RECIPE, 0, r"^\d+ held-out rows \(data\.min_heldout_rows 5\)$"),
        (CHECK_FAILS_RECIPE, 1, r"^4 held-out rows \(data\.min_heldout_rows 10; "),
    ):
        page.get_by_placeholder("Filter by partition").fill(recipe_id)
        page.get_by_text(re.compile(f"^{recipe_id[:8]}.*")).first.click()
        expect(shown(page, re.compile(f"^Failed \\({failed}\\)$"))).to_be_visible()
        expect(shown(page, re.compile(f"^Passed \\({1 - failed}\\)$"))).to_be_visible()
        expect(shown(page, re.compile(summary)).first).to_be_visible()
        save_screenshot(page, f"dagster-check-partition-{'failed' if failed else 'passed'}")
    page.set_viewport_size(VIEWPORT)


# --- MLflow ------------------------------------------------------------------------


def _experiment_id() -> str:
    from pipelines.lib import tracking

    return tracking.configure_mlflow().get_experiment_by_name(tracking.EXPERIMENT).experiment_id


def _mlflow_run_id(dagster_run_id: str) -> str:
    from pipelines.lib import tracking

    client = tracking.configure_mlflow()
    (run,) = client.search_runs(
        [_experiment_id()], filter_string=f"tags.`rung.dagster_run_id` = '{dagster_run_id}'"
    )
    return run.info.run_id


def _experiment_page(mlflow_ui) -> str:
    """The experiment as rung links it: MLflow 3's UI opens every experiment in its GenAI
    mode (traces overview) unless told otherwise, whatever the experiment's kind tag."""
    return f"{mlflow_ui.url}/#/experiments/{_experiment_id()}?workflowType=machine_learning"


def _select_runs(page, names) -> None:
    for name in names:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
        row.first.get_by_role("checkbox", name=re.compile("row selection")).check()


def test_the_experiment_opens_on_its_runs_table_with_rung_tags(page, mlflow_ui, tiny_run, ui_run):
    recipe, outcome = tiny_run
    page.goto(_experiment_page(mlflow_ui))
    expect(page.get_by_role("grid").first).to_be_visible()
    expect(shown(page, "Run Name", exact=True)).to_be_visible()
    for name in (recipe.id, UI_RECIPE):
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    save_screenshot(page, "mlflow-runs-table")

    run_id = _mlflow_run_id(outcome.dagster_run_id)
    page.goto(
        f"{mlflow_ui.url}/#/experiments/{_experiment_id()}/runs/{run_id}"
        "?workflowType=machine_learning"
    )
    for tag in ("rung.recipe_id", "rung.data_dvc_md5", "rung.recipe_sha256", "rung.verdict"):
        expect(shown(page, tag)).to_be_visible()
    save_screenshot(page, "mlflow-run-tags")


def test_two_runs_compare_side_by_side(page, mlflow_ui, tiny_run, ui_run):
    _, outcome = tiny_run
    runs = [_mlflow_run_id(outcome.dagster_run_id), _mlflow_run_id(ui_run.run_id)]
    names = ("address-tiny", UI_RECIPE)

    # Compare: the two runs' params and metrics in columns, with a plot of them
    page.goto(_experiment_page(mlflow_ui))
    _select_runs(page, names)
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(shown(page, "Comparing 2 Runs")).to_be_visible()
    for run_id in runs:
        expect(shown(page, run_id)).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    save_screenshot(page, "mlflow-compare-page")
    # a metric row of the comparison opens that metric's chart for both runs
    page.get_by_role("link", name="baseline.field_f1", exact=True).click()
    expect(shown(page, "baseline.field_f1", exact=True)).to_be_visible()
    for name in names:
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
        expect(shown(page, f"{name} (baseline.field_f1)")).to_be_visible()  # the legend
    save_screenshot(page, "mlflow-compare-metric")

    # the chart view: every run's value of each metric, one bar chart per metric
    page.goto(_experiment_page(mlflow_ui))
    page.locator("label:has(input[name=runs-view-mode][value=CHART])").click()
    search = page.get_by_placeholder(re.compile("metrics.rmse"))  # the runs search box
    search.fill("attributes.run_id IN (" + ", ".join(f"'{run}'" for run in runs) + ")")
    search.press("Enter")
    expect(shown(page, "2 matching runs")).to_be_visible()
    page.get_by_placeholder("Search metric charts").fill("field_f1")
    for metric in ("baseline.field_f1", "few_shot.field_f1", "tuned.field_f1"):
        expect(shown(page, metric, exact=True)).to_be_visible()
    for name in names:
        expect(shown(page, name)).to_be_visible()
    save_screenshot(page, "mlflow-compare", readme=True)


def test_the_registered_model_shows_aliases_and_lineage_tags(page, mlflow_ui, tiny_run):
    from pipelines.lib import tracking

    _, outcome = tiny_run
    if outcome.verdict != "SHIP":
        pytest.skip(f"address-tiny's verdict is {outcome.verdict}: no model version to show")
    run_id = _mlflow_run_id(outcome.dagster_run_id)
    client = tracking.configure_mlflow()
    (registered,) = client.search_model_versions(f"run_id = '{run_id}'")
    name, version = registered.name, registered.version
    aliases = [a for a, v in client.get_registered_model(name).aliases.items() if v == version]
    assert aliases, f"{name} version {version} holds no alias"
    page.goto(f"{mlflow_ui.url}/#/models/{name}")
    shown(page, "Versions", exact=True).scroll_into_view_if_needed()
    row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Version {version}", exact=True)
    )
    for alias in aliases:
        expect(row).to_contain_text(alias)
    save_screenshot(page, "mlflow-registered-model")
    page.goto(f"{mlflow_ui.url}/#/models/{name}/versions/{version}")
    for alias in aliases:
        expect(shown(page, re.compile(rf"^@\s*{alias}$"))).to_be_visible()
    for tag in ("rung.data_dvc_md5", "rung.recipe_sha256", "rung.git_commit", "rung.verdict"):
        expect(shown(page, tag)).to_be_visible()
    save_screenshot(page, "mlflow-model-version-lineage")


@pytest.mark.parametrize(
    ("artifact", "screenshot", "in_readme"),
    [
        ("data_card/data_card.html", "mlflow-data-card", True),
        ("evaluation/report.html", "mlflow-report", False),
    ],
)
def test_html_reports_show_their_charts_in_the_artifact_view(
    page, mlflow_ui, tiny_run, artifact, screenshot, in_readme
):
    """MLflow's markdown view shows no image (it drops data URIs and prints other image
    links as text); its HTML view does, so each report is also logged as HTML."""
    _, outcome = tiny_run
    run_id = _mlflow_run_id(outcome.dagster_run_id)
    page.goto(
        f"{mlflow_ui.url}/#/experiments/{_experiment_id()}/runs/{run_id}/artifacts/{artifact}"
        "?workflowType=machine_learning"
    )
    frame = page.frame_locator("iframe").first
    images = frame.locator("img")
    expect(images.first).to_be_visible()
    widths = images.evaluate_all("imgs => imgs.map(img => img.naturalWidth)")
    assert widths and all(width > 0 for width in widths), widths
    images.first.evaluate("img => img.scrollIntoView({block: 'center'})")
    save_screenshot(page, screenshot, readme=in_readme)

import dagster as dg

from pipelines.launch import job_assets
from pipelines.recipe import list_recipe_ids


def test_definitions_load_with_the_whole_graph():
    from pipelines.definitions import defs

    job = defs.resolve_job_def("fine_tune")
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    # every asset is in the job but the monitoring group's (they watch served models)
    assert keys - {"traffic_drift"} == set(job_assets())
    assert "traffic_drift" in keys and "traffic_drift" not in job_assets()
    assert job.partitions_def.get_partition_keys() == list_recipe_ids()
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey("training_run")).parent_keys
    assert {k.to_user_string() for k in parents} == {
        "base_model",
        "raw_data",
        "split",
        "training_set",
    }
    gate = dg.AssetCheckKey(dg.AssetKey("evaluation"), "ship_gate")
    assert gate in graph.asset_check_keys
    # NO-SHIP warns instead of failing the run; registered_adapter itself registers nothing
    assert not graph.get_check_spec(gate).blocking


def test_partitions_are_the_recipe_file_stems():
    assert "address-tiny" in list_recipe_ids()

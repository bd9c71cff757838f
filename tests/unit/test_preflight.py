import pytest
import yaml

from heartml.core.errors import ConfigError, DataSourceError, DataValidationError
from heartml.core.versioning import frame_fingerprint
from heartml.platform.preflight import check_run_config
from tests.conftest import ROOT


def shipped_config():
    return yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())


def test_shipped_configs_pass():
    assert check_run_config(shipped_config(), ROOT).dataset == "heart"
    fast = yaml.safe_load((ROOT / "tests" / "configs" / "training-fast.yaml").read_text())
    assert check_run_config(fast, ROOT).dataset == "heart"
    records = shipped_config()
    records["parameters"]["dataset_config"] = "configs/datasets/heart_failure_records.yaml"
    assert check_run_config(records, ROOT).dataset == "heart_failure_records"


def test_the_check_gives_the_version_of_the_data_the_run_will_ingest(heart_raw):
    """Its hash is the ingestion step's expected_data_hash: unchanged data makes that step a cache hit."""
    checked = check_run_config(shipped_config(), ROOT)
    assert checked.data_hash == frame_fingerprint(heart_raw)
    assert (checked.source, checked.rows, checked.columns) == ("bundled://heart", *heart_raw.shape)


def test_bad_options_are_named_with_their_path_in_the_config():
    config = shipped_config()
    config["steps"]["data_preprocessing"]["parameters"]["preprocessing"]["scaling"] = "zscore"
    config["steps"]["data_preprocessing"]["parameters"]["split"]["test_size"] = 1.5
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "configs/training.yaml")
    assert caught.value.lines == [
        "configs/training.yaml: steps.data_preprocessing.parameters.split.test_size: "
        "Input should be less than or equal to 0.5",
        "configs/training.yaml: steps.data_preprocessing.parameters.preprocessing.scaling: "
        "Input should be 'standard', 'minmax', 'robust' or 'none'",
    ]


def test_feature_options_are_checked_against_the_selected_dataset():
    config = shipped_config()
    config["parameters"]["dataset_config"] = "configs/datasets/heart_failure_records.yaml"
    config["steps"]["feature_engineering"]["parameters"]["features"]["group_relative"] = {
        "enabled": True, "by": ["sex"], "columns": ["Cholesterol"]}
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "c.yaml")
    assert caught.value.lines == ["c.yaml: steps.feature_engineering.parameters.features.group_relative.columns: "
                                  "'Cholesterol' is not a numeric feature of dataset 'heart_failure_records'"]


def test_source_and_data_problems_stop_the_run(tmp_path, heart_raw):
    config = shipped_config()
    config["parameters"]["source"] = str(tmp_path / "missing.csv")
    with pytest.raises(DataSourceError, match="missing.csv: file not found"):
        check_run_config(config, ROOT)
    heart_raw.drop(columns=["Sex"]).to_csv(tmp_path / "h.csv", index=False)
    config["parameters"]["source"] = str(tmp_path / "h.csv")
    with pytest.raises(DataValidationError, match="column 'Sex': rule 'required column' failed"):
        check_run_config(config, ROOT)


def test_the_seed_is_set_once_for_the_run():
    config = shipped_config()
    assert config["parameters"]["seed"] == 42
    config["steps"]["model_building"]["parameters"]["modeling"]["seed"] = 7
    config["steps"]["write_model_card"]["parameters"]["card"]["bootstrap"]["seed"] = 7
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "configs/training.yaml")
    assert caught.value.lines == [
        f"configs/training.yaml: steps.{where}.seed: the seed is set once for the whole run, as parameters.seed"
        for where in ("model_building.parameters.modeling", "write_model_card.parameters.card.bootstrap")]



def test_a_dataset_s_own_step_parameters_are_checked_before_a_run(tmp_path):
    dataset = yaml.safe_load((ROOT / "configs" / "datasets" / "heart.yaml").read_text())
    dataset["step_parameters"] = {"model_building": {"modeling": {"cv_folds": 1}},
                                  "register_model": {"decision_threshold": 0.3}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(dataset))
    config = shipped_config()
    config["parameters"]["dataset_config"] = str(path)
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "c.yaml")
    assert caught.value.lines == [
        f"{path}: step_parameters.register_model.decision_threshold: not a parameter a dataset can set (known: "
        "data_preprocessing.cleaning, data_preprocessing.preprocessing, data_preprocessing.split, "
        "feature_engineering.features, model_building.modeling, model_evaluation.decision_threshold)"]
    del dataset["step_parameters"]["register_model"]
    path.write_text(yaml.safe_dump(dataset))
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "c.yaml")
    assert caught.value.lines == ["dataset 'heart': step_parameters.model_building.modeling.cv_folds: "
                                  "Input should be greater than or equal to 2"]


def test_a_bare_number_decision_threshold_is_checked_as_a_fixed_rule():
    config = shipped_config()
    config["steps"]["model_evaluation"]["parameters"]["decision_threshold"] = 1.5
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "c.yaml")
    assert caught.value.lines == ["c.yaml: steps.model_evaluation.parameters.decision_threshold.value: "
                                  "Input should be less than 1"]
    config["steps"]["model_evaluation"]["parameters"]["decision_threshold"] = 0.3
    assert check_run_config(config, ROOT, "c.yaml").dataset == "heart"


def test_parameters_that_moved_are_named_with_where_they_went():
    config = shipped_config()
    config["steps"]["register_model"] = {"parameters": {"decision_threshold": 0.4}}
    config["steps"]["model_evaluation"]["parameters"]["fitting_check"] = {"min_score": 0.8}
    with pytest.raises(ConfigError) as caught:
        check_run_config(config, ROOT, "old.yaml")
    assert caught.value.lines == [
        "old.yaml: steps.model_evaluation.parameters.fitting_check: moved to `acceptance:` in the dataset "
        "description (configs/datasets/*.yaml)",
        "old.yaml: steps.register_model.parameters.decision_threshold: moved to "
        "steps.model_evaluation.parameters.decision_threshold (a rule, or a number for a fixed threshold)"]

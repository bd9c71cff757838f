"""Checks run before a pipeline is submitted: the run configuration's data options and the data itself.

Bad data or options then fail in a second with one line per problem, before ZenML starts a run, so nothing
is trained or registered. The ingestion step validates the data again wherever it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Type

from pydantic import BaseModel, ValidationError

from heartml.core.dataset import DatasetSpec, load_dataset_spec
from heartml.core.errors import ConfigError
from heartml.core.evaluation import ThresholdRule
from heartml.core.features import FeatureOptions, check_feature_options
from heartml.core.preprocessing import CleaningOptions, PreprocessingOptions, SplitOptions
from heartml.core.selection import ModelingOptions
from heartml.core.sources import display_uri, read_source
from heartml.core.validation import validate_frame
from heartml.core.versioning import DataVersion

DEFAULT_DATASET = "configs/datasets/heart.yaml"
# step -> parameter -> options model: the parameters of configs/training.yaml checked before a run, and the ones
# a dataset description may set for itself (`step_parameters`).
STEP_OPTIONS: Dict[str, Dict[str, Type[BaseModel]]] = {
    "data_preprocessing": {"split": SplitOptions, "cleaning": CleaningOptions, "preprocessing": PreprocessingOptions},
    "feature_engineering": {"features": FeatureOptions},
    "model_building": {"modeling": ModelingOptions},
    "model_evaluation": {"decision_threshold": ThresholdRule},
}


# Parameters older configs set that now live elsewhere: step -> parameter -> where it went.
MOVED = {
    "register_model": {"decision_threshold": "steps.model_evaluation.parameters.decision_threshold (a rule, or a "
                                              "number for a fixed threshold)"},
    "model_evaluation": {"thresholds": "steps.model_evaluation.parameters.decision_threshold.min_sensitivity",
                         "fitting_check": "`acceptance:` in the dataset description (configs/datasets/*.yaml)"},
}


def _seeds_set_per_step(value: Any, where: str) -> List[str]:
    """Where a step's options set `seed`, which the run sets once (`parameters.seed`)."""
    if not isinstance(value, dict):
        return []
    found = [f"{where}.seed" for key in value if key == "seed"]
    return found + [hit for key, item in value.items() for hit in _seeds_set_per_step(item, f"{where}.{key}")]


def _options(config: Dict[str, Any], label: str) -> Dict[str, BaseModel]:
    parsed, problems = {}, []
    steps = config.get("steps") or {}
    for step_name, step in steps.items():
        given = (step or {}).get("parameters") or {}
        for where in _seeds_set_per_step(given, f"steps.{step_name}.parameters"):
            problems.append(f"{label}: {where}: the seed is set once for the whole run, as parameters.seed")
        for parameter, moved_to in MOVED.get(step_name, {}).items():
            if parameter in given:
                problems.append(f"{label}: steps.{step_name}.parameters.{parameter}: moved to {moved_to}")
    for step_name, parameters in STEP_OPTIONS.items():
        given = ((steps.get(step_name) or {}).get("parameters") or {})
        for parameter, model in parameters.items():
            where = f"steps.{step_name}.parameters.{parameter}"
            try:
                parsed[parameter] = model.model_validate(given.get(parameter) or {})
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(p) for p in error["loc"])
                    problems.append(f"{label}: {where}{'.' + field if field else ''}: {error['msg']}")
    if problems:
        raise ConfigError(problems)
    return parsed


def _with_dataset_parameters(options: Dict[str, BaseModel], spec: DatasetSpec, path: Path) -> Dict[str, BaseModel]:
    """The options as the steps will use them, with the dataset's own `step_parameters` merged over them."""
    known = {(step, parameter) for step, parameters in STEP_OPTIONS.items() for parameter in parameters}
    problems = [f"{path}: step_parameters.{step}.{parameter}: not a parameter a dataset can set (known: "
                f"{', '.join(f'{s}.{p}' for s, p in sorted(known))})"
                for step, parameters in spec.step_parameters.items() for parameter in parameters
                if (step, parameter) not in known]
    if problems:
        raise ConfigError(problems)
    step_of = {parameter: step for step, parameter in known}
    return {name: spec.step_options(step_of[name], name, value) for name, value in options.items()}


def check_run_config(config: Dict[str, Any], root: Path, label: str = "run config") -> DataVersion:
    """Validate the data options of a ZenML run config, then read and validate its data source: the version of the
    data the run will ingest (its `data_hash` is what the ingestion step must read again to be cached).

    Relative dataset paths resolve against `root` (the project), as they do when the pipeline runs.
    """
    parameters = config.get("parameters") or {}
    dataset_path = Path(parameters.get("dataset_config") or DEFAULT_DATASET)
    spec = load_dataset_spec(dataset_path if dataset_path.is_absolute() else root / dataset_path)
    options = _with_dataset_parameters(_options(config, label), spec, dataset_path)
    check_feature_options(options["features"], spec, where=f"{label}: steps.feature_engineering.parameters.features")
    uri = parameters.get("source") or spec.default_source
    frame = read_source(uri, spec.read_options)
    version = DataVersion.of(frame, display_uri(uri), spec.name)
    validate_frame(frame, spec, version.source, fingerprint=version.data_hash)
    return version

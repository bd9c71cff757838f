"""Stage 1: read the configured source, validate it against the dataset schema, version and profile it."""

from typing import Optional, Tuple

import pandas as pd
from typing_extensions import Annotated
from zenml import add_tags, log_metadata, step

from heartml.core.dataset import DatasetSpec
from heartml.core.sources import display_uri, read_source
from heartml.core.validation import validate_frame
from heartml.core.versioning import DataVersion, check_data_unchanged
from heartml.reports.profile import DataProfile, profile_frame
from materializers import ContentHashedPandasMaterializer, DataProfileMaterializer


# Not cached by default: the source may have changed behind the same URI. run.py reads the source first and turns
# caching on with `expected_data_hash`, its content hash, so unchanged data is a cache hit; the content hash of the
# outputs lets every later step hit the cache too.
@step(
    enable_cache=False,
    output_materializers={"raw_dataset": ContentHashedPandasMaterializer, "data_profile": DataProfileMaterializer},
)
def data_ingestion(
    dataset: DatasetSpec, source: Optional[str] = None, expected_data_hash: Optional[str] = None
) -> Tuple[
    Annotated[pd.DataFrame, "raw_dataset"],
    Annotated[DataVersion, "data_version"],
    Annotated[DataProfile, "data_profile"],
]:
    """The raw frame as read (kept in the artifact store, the staging area) once it passed schema validation and,
    when `expected_data_hash` is given, holds exactly that data."""
    uri = source or dataset.default_source
    shown = display_uri(uri)  # never a password in metadata
    raw = read_source(uri, dataset.read_options)
    version = DataVersion.of(raw, shown, dataset.name)
    check_data_unchanged(version.data_hash, expected_data_hash, shown)
    # At once when run.py's preflight validated the same values.
    validate_frame(raw, dataset, shown, version.data_hash)
    profile = profile_frame(raw, dataset, shown)
    log_metadata(
        metadata={**version.model_dump(), "target_counts": profile.target_counts},
        infer_artifact=True,
        artifact_name="raw_dataset",
    )
    # Two runs on the same data carry the same tag: filter the raw_dataset versions by it in the dashboard.
    add_tags(tags=[f"data:{version.data_hash[:12]}", f"dataset:{dataset.name}"], infer_artifact=True,
             artifact_name="raw_dataset")
    return raw, version, profile

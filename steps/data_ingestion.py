"""Stage 1: read the configured source, validate it against the dataset schema, version it."""

from typing import Optional, Tuple

import pandas as pd
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.dataset import DatasetSpec
from heartml.sources import read_source
from heartml.validation import validate_frame
from heartml.versioning import DataVersion, frame_fingerprint
from materializers import ContentHashedPandasMaterializer


# Never cached: the source may have changed behind the same URI. The content hash of its
# outputs lets every later step hit the cache when the data did not change.
@step(enable_cache=False, output_materializers={"raw_dataset": ContentHashedPandasMaterializer})
def data_ingestion(
    dataset: DatasetSpec, source: Optional[str] = None
) -> Tuple[Annotated[pd.DataFrame, "raw_dataset"], Annotated[DataVersion, "data_version"]]:
    """The raw frame as read (kept in the artifact store) once it passed schema validation."""
    uri = source or dataset.default_source
    raw = read_source(uri, dataset.read_options)
    validate_frame(raw, dataset, uri)
    version = DataVersion(
        data_hash=frame_fingerprint(raw), source=uri, dataset=dataset.name, rows=len(raw), columns=raw.shape[1]
    )
    target_counts = raw[dataset.target.column].value_counts()
    log_metadata(
        metadata={**version.model_dump(), "target_counts": {str(k): int(v) for k, v in target_counts.items()}},
        infer_artifact=True,
        artifact_name="raw_dataset",
    )
    return raw, version

"""DataFrames stored as ZenML's pandas materializer does (one Parquet file, read back by it), plus a content hash.

With a content hash, a step whose input frame has the same values as last time is a cache hit even though
the frame came from a new (uncached) ingestion run. The file is compressed with zstd, not ZenML's gzip: on
probabilities (floats that barely compress) gzip took 2.4 s for 800k rows x 6 columns against 0.5 s, for 2% less
space; Parquet records the codec, so any reader opens it. After each read and write, pyarrow's allocator gives back
the buffers it kept (`release_arrow_buffers`).
"""

from __future__ import annotations

from typing import Any, Optional, Type, Union

import pandas as pd
from zenml.materializers.pandas_materializer import PandasMaterializer

from heartml.core.sources import release_arrow_buffers
from heartml.core.versioning import frame_fingerprint


class ContentHashedPandasMaterializer(PandasMaterializer):
    def compute_content_hash(self, data: Any) -> Optional[str]:
        return frame_fingerprint(data)

    def save(self, df: Union[pd.DataFrame, pd.Series]) -> None:
        if isinstance(df, pd.Series):
            df = df.to_frame(name="series")  # as ZenML's save: its load turns a lone "series" column back
        with self.artifact_store.open(self.parquet_path, mode="wb") as f:
            df.to_parquet(f, compression="zstd")
        release_arrow_buffers()

    def load(self, data_type: Type[Any]) -> Union[pd.DataFrame, pd.Series]:
        try:
            return super().load(data_type)
        finally:
            release_arrow_buffers()

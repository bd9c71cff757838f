"""Custom ZenML materializers. Importing this package registers them."""

from materializers.dataframe import ContentHashedPandasMaterializer
from materializers.profile import DataProfileMaterializer

__all__ = ["ContentHashedPandasMaterializer", "DataProfileMaterializer"]

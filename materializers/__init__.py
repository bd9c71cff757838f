"""Custom ZenML materializers. Importing this package registers them."""

from materializers.dataframe import ContentHashedPandasMaterializer

__all__ = ["ContentHashedPandasMaterializer"]

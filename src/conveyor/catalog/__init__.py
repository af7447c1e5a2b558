"""The catalogue: models and providers as the API shows them, and operator-added providers."""

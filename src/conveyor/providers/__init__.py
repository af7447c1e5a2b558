"""Providers: how a model is called (declarative HTTP specs, local engines) and the port
every model is called through (``conveyor.providers.base``)."""

"""The metadata store: resources as rows keyed by (kind, name), their tags and metric points."""

from opensage.store.repository import MetricPoint, Resource, Store

__all__ = ["MetricPoint", "Resource", "Store"]

"""Airbyte source connector for Allo (withallo.com)."""

from source_allo.source import SourceAllo

__all__ = ["SourceAllo"]

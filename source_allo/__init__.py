"""Airbyte source connector for Allo (withallo.com)."""

from source_allo import speedups  # must come before anything imports airbyte_cdk
from source_allo.source import SourceAllo

speedups.install_fast_timestamp_parsing()
speedups.install_cached_slice_hash()

__all__ = ["SourceAllo"]

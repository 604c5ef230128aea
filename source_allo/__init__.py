"""Airbyte source connector for Allo (withallo.com): `manifest.yaml` and `components.py` are the connector;
`run.py` is the `source-allo` command that runs them."""

from source_allo.run import MANIFEST_PATH, SourceAllo, build_source

__all__ = ["MANIFEST_PATH", "SourceAllo", "build_source"]

"""Builds the manifest's own component definitions with the CDK's factory, for the unit tests.

The definitions are taken from `manifest.yaml` after the CDK's own pre-processing (`$ref`s resolved,
types and `$parameters` propagated, as `ConcurrentDeclarativeSource` does), so a test exercises a
component with the settings the connector really uses: a change to the manifest shows in the tests.
"""

import copy
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import yaml

from airbyte_cdk.sources.declarative.parsers.manifest_component_transformer import ManifestComponentTransformer
from airbyte_cdk.sources.declarative.parsers.manifest_reference_resolver import ManifestReferenceResolver
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory

from source_allo import components

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = ROOT / "source_allo" / "manifest.yaml"
COMPONENTS_PATH = ROOT / "source_allo" / "components.py"
RUN_PATH = ROOT / "source_allo" / "run.py"
COMPONENTS_MODULE = "source_declarative_manifest.components"

MANIFEST: Mapping[str, Any] = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _resolved() -> dict:
    manifest = copy.deepcopy(dict(MANIFEST))
    manifest.setdefault("type", "DeclarativeSource")
    resolved = ManifestReferenceResolver().preprocess_manifest(manifest)
    return ManifestComponentTransformer().propagate_types_and_parameters("", resolved, {})


def resolved_manifest() -> dict:
    """The manifest as the CDK sees it before building components (a copy of its own to each caller)."""
    return copy.deepcopy(_resolved())


def stream_definition(name: str) -> dict:
    for stream in resolved_manifest()["streams"]:
        if stream["name"] == name:
            return stream
    raise KeyError(f"the manifest has no stream {name!r}")


def stream_names() -> list:
    return [stream["name"] for stream in resolved_manifest()["streams"]]


@contextmanager
def packaged_components() -> Iterator[None]:
    """`class_name`s say `source_declarative_manifest.components.X`: make that the packaged module (the CDK's
    injected-components path, used by the standard suite, registers an exec'd copy under the same name)."""
    saved = sys.modules.get(COMPONENTS_MODULE)
    sys.modules[COMPONENTS_MODULE] = components
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop(COMPONENTS_MODULE, None)
        else:
            sys.modules[COMPONENTS_MODULE] = saved


def build(model_type: Any, definition: Mapping[str, Any], config: Optional[Mapping[str, Any]] = None) -> Any:
    """One component, built by the CDK's factory from its (resolved) manifest definition."""
    with packaged_components():
        return ModelToComponentFactory().create_component(
            model_type=model_type, component_definition=copy.deepcopy(dict(definition)), config=dict(config or {})
        )

"""The `source-allo` command: runs `manifest.yaml` with `components.py`, exactly as Airbyte's
`source-declarative-manifest` runner runs the same two files, plus what a command line needs before a
source exists.

* The manifest names its components `source_declarative_manifest.components.<Class>` (the name Airbyte's
  manifest-only connectors use). The runner registers the injected `components.py` under that name; this
  command registers the packaged copy of the same file under it.
* The concurrent declarative source builds its streams from the config, catalog and state given to its
  constructor, so they are read from argv first. A file that cannot be read, a state the CDK refuses,
  or a catalog naming streams this connector does not have is a config error that says which file and
  what to do, never a stack trace.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any, List, Mapping, Optional

import orjson

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteStateMessage,
    AirbyteTraceMessage,
    ConfiguredAirbyteCatalog,
    FailureType,
    Status,
    TraceType,
    Type,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo import components

# Absolute, so that a stray manifest.yaml in the working directory is never picked up instead.
MANIFEST_PATH = str(Path(__file__).with_name("manifest.yaml"))
COMPONENTS_MODULE = "source_declarative_manifest.components"

sys.modules.setdefault(COMPONENTS_MODULE, components)

SourceAllo = YamlDeclarativeSource


def build_source(
    config: Optional[Mapping[str, Any]] = None,
    catalog: Optional[ConfiguredAirbyteCatalog] = None,
    state: Optional[List[AirbyteStateMessage]] = None,
) -> YamlDeclarativeSource:
    """The connector: the manifest, bound to one config, catalog and state (all optional, as for `spec`)."""
    source = YamlDeclarativeSource(path_to_yaml=MANIFEST_PATH, config=config, catalog=catalog, state=state)
    if catalog is not None:
        _refuse_unknown_streams(source, catalog)
    return source


def _refuse_unknown_streams(source: YamlDeclarativeSource, catalog: ConfiguredAirbyteCatalog) -> None:
    # The CDK marks a catalog stream it does not know INCOMPLETE and reads nothing for it: a typo would
    # look like an empty stream.
    known = [stream["name"] for stream in source.resolved_manifest.get("streams", [])]
    unknown = [configured.stream.name for configured in catalog.streams if configured.stream.name not in known]
    if unknown:
        raise AirbyteTracedException(
            message=f"The catalog names stream(s) this connector does not have: {', '.join(unknown)}. "
            f"source-allo has: {', '.join(known)}. Run `discover` again and select streams from its output.",
            failure_type=FailureType.config_error,
        )


def _read_file(kind: str, path: Optional[str], reader: Any) -> Any:
    """A file named on the command line, or a config error that names it and says what is wrong."""
    if not path:
        return None
    try:
        return reader(path)
    except Exception as error:  # noqa: BLE001 - every way a file can be unreadable gets the same answer
        if isinstance(error, OSError):
            reason = error.strerror or str(error)
        elif isinstance(error.__context__, ValueError) and "JSON" in type(error.__context__).__name__ + str(error):
            reason = f"not valid JSON ({error.__context__})"
        else:
            reason = str(error).strip().rstrip(".") or type(error).__name__
        fix = f"Pass a readable JSON file with --{kind}."
        if kind == "state":
            fix = (
                "A state is a JSON list of Airbyte state messages of type STREAM, as the last STATE messages of a "
                "sync. Run without --state (or clear the connection's state in Airbyte) to read from start_date."
            )
        raise AirbyteTracedException(
            message=f"Could not read the {kind} file {path}: {reason}. {fix}",
            failure_type=FailureType.config_error,
        ) from error


def _print(message: AirbyteMessage) -> None:
    print(orjson.dumps(AirbyteMessageSerializer.dump(message)).decode(), flush=True)


def _source_from_args(args: List[str]) -> Optional[YamlDeclarativeSource]:
    command = args[0] if args else None
    try:
        config = _read_file("config", AirbyteEntrypoint.extract_config(args), YamlDeclarativeSource.read_config)
        catalog = _read_file("catalog", AirbyteEntrypoint.extract_catalog(args), YamlDeclarativeSource.read_catalog)
        state = _read_file("state", AirbyteEntrypoint.extract_state(args), YamlDeclarativeSource.read_state)
        try:
            return build_source(config=config, catalog=catalog, state=state)
        except AirbyteTracedException:
            raise
        except Exception as error:  # noqa: BLE001
            if state and "state" in str(error).lower():
                raise AirbyteTracedException(
                    message=f"The saved state cannot be used: {error}. Clear the connection's state in Airbyte (or run "
                    "without --state) to read again from start_date.",
                    failure_type=FailureType.config_error,
                ) from error
            raise
    except Exception as error:  # noqa: BLE001 - reported as a protocol message below
        traced = error if isinstance(error, AirbyteTracedException) else None
        message = traced.message if traced and traced.message else f"Could not start source-allo: {error}"
        if command == "check":
            # Protocol convention: a failed check is a FAILED status, not an error exit.
            _print(AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=message)))
            return None
        _print(
            AirbyteMessage(
                type=Type.TRACE,
                trace=AirbyteTraceMessage(
                    type=TraceType.ERROR,
                    emitted_at=time.time() * 1000,
                    error=AirbyteErrorTraceMessage(
                        message=message,
                        internal_message=message,
                        failure_type=traced.failure_type if traced else FailureType.system_error,
                        # A config problem is fully described by its message.
                        stack_trace=None if traced else traceback.format_exc(),
                    ),
                ),
            )
        )
        sys.exit(1)


def main() -> None:
    args = sys.argv[1:]
    source = _source_from_args(args)
    if source is not None:
        launch(source, args)


if __name__ == "__main__":
    main()

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

import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, List, Mapping, Optional
from urllib.parse import urlsplit

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


PROBE_TIMEOUT_SECONDS = 5.0


def _config_error_for(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, failure_type=FailureType.config_error)


def _probe_connection(url: str, host: str, port: int) -> None:
    """Opens (and closes) a TCP connection to the API host before `check` or `read` starts: no request is
    sent, nothing counts against a quota. A wrong URL then fails the command at once with one message, where
    every partition of every stream would otherwise fail on its own (the concurrent CDK fails partitions
    one by one). Skipped behind an HTTP(S) proxy, which requests go through but a direct connection does
    not. Not part of the manifest: config validations also run for `discover`, which needs no network."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS).close()
    except socket.gaierror:
        raise _config_error_for(components.unreachable_message(url, "the host name could not be resolved")) from None
    except ConnectionRefusedError:
        raise _config_error_for(components.unreachable_message(url, "the connection was refused")) from None
    except (socket.timeout, TimeoutError):
        raise AirbyteTracedException(
            message=f"The Allo API at {url} did not accept a connection within {PROBE_TIMEOUT_SECONDS:.0f} s. Check that "
            "this machine can reach it (firewall, proxy), then retry.",
            failure_type=FailureType.transient_error,
        ) from None
    except OSError as error:
        raise AirbyteTracedException(
            message=components.unreachable_message(url, str(error.strerror or error)),
            failure_type=FailureType.transient_error,
        ) from None


def validate_config(source: YamlDeclarativeSource) -> None:
    """Runs the manifest's config validations now. Building the streams runs them first; inside `check` the
    CDK would log a validation error with its stack trace, where the message says everything."""
    source.streams(config={})


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


def _refuse_unusable_state_messages(state: Optional[List[AirbyteStateMessage]]) -> None:
    # This connector saves one STREAM state message per stream. The CDK silently ignores a LEGACY one
    # (and would hand a GLOBAL one's shared cursor to every stream): a sync would start over, or skip, unsaid.
    for message in state or []:
        kind = getattr(getattr(message, "type", None), "value", None) or str(getattr(message, "type", ""))
        if kind != "STREAM":
            raise AirbyteTracedException(
                message=f"The state holds a {kind or 'untyped'} state message; source-allo saves and resumes only from "
                "per-stream (STREAM) state messages. Clear the connection's state in Airbyte (or run without --state) "
                "to read again from start_date.",
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
        _refuse_unusable_state_messages(state)
        try:
            source = build_source(config=config, catalog=catalog, state=state)
            if config is not None and command in ("check", "discover", "read"):
                validate_config(source)
            if config is not None and command in ("check", "read"):
                url = config.get("api_url") or components.DEFAULT_API_URL
                parts = urlsplit(url)
                if parts.hostname:
                    _probe_connection(url, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
            return source
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

"""Console entry point `source-allo`: parses config, catalog and state from argv before building the
source (the concurrent declarative source binds them at construction), and turns a bad config into a
clear protocol message instead of a stack trace."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from typing import Any, List, Optional

import orjson

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteTraceMessage,
    FailureType,
    Status,
    TraceType,
    Type,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo.source import SourceAllo


def _print(message: AirbyteMessage) -> None:
    print(orjson.dumps(AirbyteMessageSerializer.dump(message)).decode(), flush=True)


def _read_file(kind: str, path: Optional[str], reader: Any) -> Any:
    """A file named on the command line, or a config error that names it and says what is wrong."""
    if not path:
        return None
    try:
        return reader(path)
    except (OSError, ValueError) as error:
        if isinstance(error, OSError):
            reason = error.strerror or str(error)
        elif isinstance(error.__context__, json.JSONDecodeError):  # the CDK re-raises it as a ValueError
            reason = f"not valid JSON ({error.__context__})"
        else:  # valid JSON of the wrong shape, e.g. a config that is not an object
            reason = str(error).rstrip(".")
        raise AirbyteTracedException(
            message=f"Could not read the {kind} file {path}: {reason}. Pass a readable JSON file with --{kind}.",
            failure_type=FailureType.config_error,
        ) from error


def _build_source(args: List[str]) -> Optional[SourceAllo]:
    command = args[0] if args else None
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    try:
        # Config first: a bad config is the most useful error to report.
        config = _read_file("config", config_path, SourceAllo.read_config)
        return SourceAllo(
            config=config,
            catalog=_read_file("catalog", catalog_path, SourceAllo.read_catalog),
            state=_read_file("state", state_path, SourceAllo.read_state),
        )
    except Exception as error:
        traced = error if isinstance(error, AirbyteTracedException) else None
        message = traced.message if traced and traced.message else f"Could not start source-allo: {error}"
        failure_type = traced.failure_type if traced else FailureType.system_error
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
                        failure_type=failure_type,
                        # A config problem is fully described by the message; no stack trace for it.
                        stack_trace=None if traced else traceback.format_exc(),
                    ),
                ),
            )
        )
        sys.exit(1)


def run() -> None:
    args = sys.argv[1:]
    source = _build_source(args)
    if source is not None:
        launch(source, args)


def main() -> None:
    """The `source-allo` command: `run()`, then leave at once, whatever the outcome. Every message has
    been written by then (an uncaught error is reported by the CDK's exception hook, as it would be at
    exit). Leaving at once skips tearing down the interpreter, a third of a second on every sync, and
    never lets a page requested ahead for a partition that failed be sent after the sync is over."""
    code = 0
    try:
        run()
    except SystemExit as exit_request:
        if isinstance(exit_request.code, int):
            code = exit_request.code
        elif exit_request.code is not None:
            print(exit_request.code, file=sys.stderr)
            code = 1
    except BaseException as error:  # noqa: BLE001 - reported exactly as an uncaught exception would be
        sys.excepthook(*sys.exc_info())
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # the reader went away (`| head`): nothing left to tell it
                pass
        logging.shutdown()
        os._exit(code)


if __name__ == "__main__":
    main()

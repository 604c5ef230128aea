"""Console entry point `source-allo`: parses config, catalog and state from argv before building the
source (the concurrent declarative source binds them at construction), and turns a bad config into a
clear protocol message instead of a stack trace."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from typing import List, Optional

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


def _build_source(args: List[str]) -> Optional[SourceAllo]:
    command = args[0] if args else None
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    try:
        # Config first: a bad config is the most useful error to report.
        config = SourceAllo.read_config(config_path) if config_path else None
        return SourceAllo(
            config=config,
            catalog=SourceAllo.read_catalog(catalog_path) if catalog_path else None,
            state=SourceAllo.read_state(state_path) if state_path else None,
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
    """The `source-allo` command: `run()`, then leave at once. Every message has been written by then;
    tearing down the interpreter (freeing the CDK's whole object graph) would add a third of a second
    to every sync and do nothing else."""
    run()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()

"""SourceAllo: the manifest plus what only Python can do (config checks, `check`, scope gating)."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional

import requests

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    Status,
)
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    SimpleRetriever as SimpleRetrieverModel,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo import allo_api
from source_allo.allo_api import API_KEYS_PAGE, STREAM_SCOPES, UNDOCUMENTED_SCOPE_PROBES, AlloApi, AlloApiError, KeyInfo
from source_allo.components import PROGRESS, PageAhead, in_background, list_allo_numbers_early
from source_allo.config import ConfigError, normalize_config, sanitize_state

# Absolute, so that a stray manifest.yaml in the working directory is never picked up instead.
MANIFEST_PATH = str(Path(__file__).with_name("manifest.yaml"))

REQUIRED_SCOPE = "CONVERSATIONS_READ"

# Streams whose pages are requested ahead of the reader (components.PageAhead), and how many pages
# ahead: at Allo's ~150 ms per answer, 4 requests in flight fill the 20 GET/s budget from a single
# partition; the api_budget holds back whatever would exceed it. conversation_items is not among them:
# its POST budget (5/s) is already filled by its date windows read side by side.
PAGE_AHEAD_STREAMS = {"conversations": 3, "calls": 3, "contacts": 3}

# Streams partitioned by Allo number (the manifest's `allo_number_partitions`): a sync of any of them
# lists the account's numbers.
NUMBER_PARTITIONED_STREAMS = frozenset({"conversations", "calls"})


class SourceAllo(YamlDeclarativeSource):
    """The concurrent declarative source builds its streams from the config, catalog and state given to
    the constructor, so `run.py` parses them from argv first. All arguments are optional (`spec`, and
    the CDK's standard tests, build it with none)."""

    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        config_path: Optional[str] = None,
        **kwargs: Any,
    ):
        config = normalize_config(config)
        if config:
            # The entrypoint masks the key as the user typed it; mask the bare key too.
            update_secrets([config["api_key"]])
        self._request_timeout_seconds = (config or {}).get("request_timeout_seconds", 60)
        self._key_info_early: Optional[Future] = None
        self._me_called = False
        self._numbers_listed_early = False
        if config and catalog:  # a `read`, the only command given a catalog
            self._start_early_calls(config, catalog)
        super().__init__(
            path_to_yaml=MANIFEST_PATH,
            catalog=catalog,
            config=config,
            state=sanitize_state(state),
            config_path=None,  # the normalised config above is the one to use, not the file's
            **kwargs,
        )
        self._read_pages_ahead()

    def _start_early_calls(self, config: Mapping[str, Any], catalog: ConfiguredAirbyteCatalog) -> None:
        """Sends `GET /v2/api/me`, and the numbers listing when a selected stream needs it, on background
        threads now: they then overlap the CDK building the source (about 0.3 s) instead of following it.
        `read` takes their results; their errors are raised there, as if the calls were made there."""
        if NUMBER_PARTITIONED_STREAMS & {configured.stream.name for configured in catalog.streams}:
            self._numbers_listed_early = list_allo_numbers_early(config)
        self._key_info_early = in_background(AlloApi.from_config(config).me, "allo-me")

    def _read_pages_ahead(self) -> None:
        """Builds the streams of PAGE_AHEAD_STREAMS with a PageAhead on their retriever. The CDK has no
        option for it, so this wraps the factory's SimpleRetriever constructor (the factory is built
        inside the CDK's constructor); without that hook the streams are read page by page, correctly."""
        constructors = getattr(getattr(self, "_constructor", None), "PYDANTIC_MODEL_TO_CONSTRUCTOR", None)
        if not isinstance(constructors, dict) or SimpleRetrieverModel not in constructors:
            return
        build_retriever = constructors[SimpleRetrieverModel]

        def build_retriever_reading_ahead(model: Any, config: Mapping[str, Any], **kwargs: Any) -> Any:
            retriever = build_retriever(model, config, **kwargs)
            depth = PAGE_AHEAD_STREAMS.get(kwargs.get("name", ""))
            if depth and hasattr(retriever, "_fetch_next_page") and hasattr(retriever, "_paginator"):
                first_page = retriever._paginator.get_initial_token()
                if isinstance(first_page, int):
                    retriever._fetch_next_page = PageAhead(retriever._fetch_next_page, first_page, depth)
            return retriever

        constructors[SimpleRetrieverModel] = build_retriever_reading_ahead

    def _read_and_parse_yaml_file(self, path_to_yaml_file: str) -> Any:
        # The manifest's timeout fields take numbers, not templates: set the configured read timeout here.
        manifest = super()._read_and_parse_yaml_file(path_to_yaml_file)
        manifest["definitions"]["requester"]["read_timeout_in_seconds"] = self._request_timeout_seconds
        # Evaluated once here rather than once per record (see the manifest's `sync_end_datetime`).
        end = manifest["definitions"]["sync_end_datetime"]
        end["datetime"] = (datetime.now(timezone.utc) + timedelta(days=1)).strftime(end["datetime_format"])
        return manifest

    # ------------------------------------------------------------------------------------------ check

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        try:
            config = normalize_config(config) or {}
            info = AlloApi.from_config(config).me()
        except (ConfigError, AlloApiError) as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=error.message)
        except AirbyteTracedException as error:
            if error.message and "Exhausted available request attempts" not in error.message:
                return AirbyteConnectionStatus(status=Status.FAILED, message=error.message)  # e.g. quota spent
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=f"Could not reach the Allo API at {config.get('api_url')} ({_short_reason(error)}). "
                "Check the API URL and that this machine can open HTTPS connections to it, then retry.",
            )
        except Exception as error:  # unreachable host, TLS failure, retries exhausted
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=f"Could not reach the Allo API at {config.get('api_url')} ({_short_reason(error)}). "
                "Check the API URL and that this machine can open HTTPS connections to it, then retry.",
            )
        if REQUIRED_SCOPE not in info.effective_scopes:
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=f"The Allo API key is valid but lacks the {REQUIRED_SCOPE} scope, which every conversation "
                f"stream needs. Create a key with {REQUIRED_SCOPE} in Allo under Settings > API ({API_KEYS_PAGE}).",
            )
        unreadable = self._unreadable_streams(info, self._selected_stream_names())
        message = f"Connected to Allo{f' team {info.team_name}' if info.team_name else ''}."
        if unreadable:
            message += " The key cannot read these streams, which will be skipped: " + "; ".join(
                f"{name} (needs {scope})" for name, scope in unreadable
            ) + f". Grant the scopes in Allo under Settings > API ({API_KEYS_PAGE}) to sync them."
        logger.info(message)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED, message=message)

    # ------------------------------------------------------------------------------------------- read

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        PROGRESS.reset(self._message_repository, float(os.environ.get("SOURCE_ALLO_PROGRESS_SECONDS", "30")))
        early, self._key_info_early = self._key_info_early, None
        info = early.result() if early else AlloApi.from_config(self._config).me()
        self._me_called = True
        # Pace requests from this key's real limits (read by the manifest's api_budget).
        self._config = {
            **self._config,
            "_read_per_second": info.read_per_second,
            "_write_per_second": info.write_per_second,
        }
        readable = []
        for configured in catalog.streams:
            name = configured.stream.name
            if not info.can_read(name):
                logger.warning(
                    f"Skipping stream `{name}`: the Allo API key lacks the {STREAM_SCOPES[name]} scope. Grant it in "
                    f"Allo under Settings > API ({API_KEYS_PAGE}) to sync this stream. The other streams go on."
                )
            elif (refusal := self._undocumented_scope_refusal(name, info)) is not None:
                logger.warning(
                    f"Skipping stream `{name}`: the Allo API key lacks the scope it needs ({refusal}). Grant it in "
                    f"Allo under Settings > API ({API_KEYS_PAGE}) to sync this stream. The other streams go on."
                )
            else:
                readable.append(configured)
        if not readable:
            raise AirbyteTracedException(
                message="The Allo API key cannot read any of the selected streams; see the warnings above for the "
                "scopes to grant.",
                failure_type=ConfigError("x").failure_type,
            )
        yield from super().read(logger, self._config, ConfiguredAirbyteCatalog(streams=readable), state)

    def streams(self, config: Mapping[str, Any]) -> List[Any]:
        streams = super().streams(config)
        # The CDK builds the manifest's api_budget here and gives it only to the streams' requesters (no
        # public accessor). Share it with the numbers listing, and count the calls already made (`me`, the
        # numbers listed early), so that the first second of a sync does not exceed the key's limit.
        budget = getattr(getattr(self, "_constructor", None), "_api_budget", None)
        if budget is not None and budget is not allo_api.SHARED_BUDGET:
            allo_api.SHARED_BUDGET = budget
            made = ["/v2/api/me"] if self._me_called else []
            made += ["/v2/api/numbers"] if self._numbers_listed_early else []
            for path in made:
                budget.acquire_call(requests.Request("GET", f"{self._config.get('api_url')}{path}").prepare())
        return streams

    # ---------------------------------------------------------------------------------------- helpers

    def _undocumented_scope_refusal(self, name: str, info: KeyInfo) -> Optional[str]:
        """For a stream whose scope Allo does not document, one probe request instead of finding out on
        every one of its requests (team_metrics_daily makes one per day)."""
        probe = UNDOCUMENTED_SCOPE_PROBES.get(name)
        if probe is None:
            return None
        method, path, body = probe
        if info.lists_endpoint(method, path):
            return None
        today = datetime.now(timezone.utc).date().isoformat()
        body = json.loads(json.dumps(body).replace("{today}", today))
        try:
            return AlloApi.from_config(self._config).missing_scope(method, path, body)
        except Exception:
            return None  # the stream's own requests will report any other problem

    def _selected_stream_names(self) -> List[str]:
        catalog = getattr(self, "_catalog", None)
        if catalog and getattr(catalog, "streams", None):
            return [s.stream.name for s in catalog.streams]
        return list(STREAM_SCOPES)

    @staticmethod
    def _unreadable_streams(info: KeyInfo, names: List[str]) -> List[tuple[str, str]]:
        return [(n, STREAM_SCOPES[n]) for n in names if n in STREAM_SCOPES and not info.can_read(n)]


def _short_reason(error: Exception) -> str:
    text = str(getattr(error, "message", None) or error)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("timed out", "timed out"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if marker in text:
            return reason
    return type(error).__name__

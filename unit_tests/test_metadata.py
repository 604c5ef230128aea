"""Consistency of the registry metadata, the icon and the docs page with the package.

Reads only files of this repository: setup.py is parsed, never imported or run.
"""

import ast
import re
import uuid
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
METADATA = ROOT / "metadata.yaml"
SETUP_PY = ROOT / "setup.py"
DOCS = ROOT / "docs" / "allo.md"
ICON = ROOT / "icon.svg"
DOCKERFILE = ROOT / "Dockerfile"
MANIFEST = ROOT / "source_allo" / "manifest.yaml"

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


# ------------------------------------------------------------------------------------------ helpers


def _metadata() -> dict:
    return yaml.safe_load(METADATA.read_text(encoding="utf-8"))["data"]


def _setup_info() -> dict:
    """VERSION and setup(name=...) from setup.py's syntax tree."""
    tree = ast.parse(SETUP_PY.read_text(encoding="utf-8"))
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    info = {"VERSION": constants.get("VERSION")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    info["name"] = keyword.value.value
                if keyword.arg == "version":
                    if isinstance(keyword.value, ast.Constant):
                        info["version"] = keyword.value.value
                    elif isinstance(keyword.value, ast.Name):
                        info["version"] = constants.get(keyword.value.id)
    return info


def _section(markdown: str, title: str) -> str:
    """The text of the `## title` section, up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(title)}[ \t]*\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"docs/allo.md has no `## {title}` section"
    return match.group(1)


def _table_rows(text: str) -> list[list[str]]:
    """Body rows of the first Markdown table in `text` (header and separator removed)."""
    rows = []
    lines = [line.strip() for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return rows
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _changelog_versions() -> list[str]:
    section = _section(DOCS.read_text(encoding="utf-8"), "Changelog")
    assert "<details>" in section and "Expand to review" in section, "the changelog must sit in a <details> block"
    return [row[0] for row in _table_rows(section) if VERSION_RE.match(row[0])]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _manifest_stream_names() -> list[str]:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            target = manifest
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    return [resolve(stream)["name"] for stream in manifest["streams"]]


def _documented_stream_names() -> list[str]:
    section = _section(DOCS.read_text(encoding="utf-8"), "Supported Streams")
    return [row[0].strip("`* ") for row in _table_rows(section)]


def _dockerfile_base_image_default() -> str:
    match = re.search(r"^\s*ARG\s+BASE_IMAGE=(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert match, "the Dockerfile declares no default for ARG BASE_IMAGE"
    return match.group(1)


def _svg_length(value: str) -> float:
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(px)?\s*", value or "")
    assert match, f"icon.svg has a width/height that is not a plain length: {value!r}"
    return float(match.group(1))


# -------------------------------------------------------------------------------------------- tests


def test_docker_image_tag_equals_setup_version_and_newest_changelog_entry():
    tag = _metadata()["dockerImageTag"]
    setup = _setup_info()
    versions = _changelog_versions()

    assert VERSION_RE.match(str(tag)), f"dockerImageTag {tag!r} is not a semantic version"
    assert setup["VERSION"] == tag, f"setup.py VERSION {setup['VERSION']!r} != metadata dockerImageTag {tag!r}"
    assert setup.get("version") == setup["VERSION"], "setup(version=...) must be the VERSION constant"
    assert versions, "docs/allo.md's changelog table has no version rows"
    newest = max(versions, key=_version_key)
    assert newest == tag, f"newest changelog version {newest!r} != dockerImageTag {tag!r}"
    assert versions[0] == newest, "the changelog's first row must be the newest version"


def test_docker_repository():
    assert _metadata()["dockerRepository"] == "airbyte/source-allo"


def test_tags_declare_python_and_low_code_cdk():
    tags = _metadata()["tags"]
    assert "language:python" in tags
    assert "cdk:low-code" in tags


def test_base_image_is_pinned_by_digest_and_matches_dockerfile():
    base_image = _metadata()["connectorBuildOptions"]["baseImage"]
    assert base_image.startswith("docker.io/airbyte/python-connector-base:"), base_image
    assert re.fullmatch(r"\S+:[0-9][^@\s]*@sha256:[0-9a-f]{64}", base_image), f"{base_image!r} is not pinned by a sha256 digest"
    if DOCKERFILE.exists():
        assert _dockerfile_base_image_default() == base_image, "the Dockerfile's BASE_IMAGE default differs from metadata.yaml"


def test_dockerfile_version_label_matches_image_tag():
    if not DOCKERFILE.exists():
        pytest.skip("no Dockerfile")
    match = re.search(r'io\.airbyte\.version="([^"]+)"', DOCKERFILE.read_text(encoding="utf-8"))
    if not match:
        pytest.skip("the Dockerfile sets no io.airbyte.version label")
    assert match.group(1) == _metadata()["dockerImageTag"]


def test_pypi_package_name_equals_setup_name():
    pypi = _metadata()["remoteRegistries"]["pypi"]
    assert pypi["enabled"] is False  # not on PyPI: installed from a clone or a git URL (docs/allo.md)
    assert pypi["packageName"] == _setup_info()["name"]


def test_definition_id_is_a_uuid():
    definition_id = _metadata()["definitionId"]
    parsed = uuid.UUID(str(definition_id))
    assert str(parsed) == str(definition_id).lower()
    assert parsed.version == 4


def test_icon_is_a_square_svg_without_external_references():
    root = ElementTree.parse(ICON).getroot()
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg"), root.tag
    width = _svg_length(root.get("width"))
    height = _svg_length(root.get("height"))
    assert width == height > 0, f"icon.svg is {width}x{height}"
    view_box = [float(v) for v in re.split(r"[\s,]+", (root.get("viewBox") or "").strip()) if v]
    assert len(view_box) == 4, f"icon.svg needs a viewBox of four numbers, not {root.get('viewBox')!r}"
    assert view_box[2] == view_box[3] > 0, f"icon.svg's viewBox is not square: {view_box}"
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.endswith("href"):
                assert value.startswith("#"), f"icon.svg refers to an external resource: {value!r}"


def test_every_manifest_stream_is_in_the_docs_streams_table():
    manifest_streams = _manifest_stream_names()
    documented = _documented_stream_names()
    assert manifest_streams, "source_allo/manifest.yaml declares no streams"
    missing = sorted(set(manifest_streams) - set(documented))
    assert not missing, f"streams missing from docs/allo.md's Supported Streams table: {missing}"
    unknown = sorted(set(documented) - set(manifest_streams))
    assert not unknown, f"docs/allo.md documents streams the manifest does not have: {unknown}"


# ------------------------------------------------------------------------------ manifest facts


def _raw_manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def _spec_properties() -> dict:
    return _raw_manifest()["spec"]["connection_specification"]["properties"]


def test_every_stream_definition_names_itself_in_its_parameters():
    """`$parameters: {name: ...}` is what the custom components read their stream's name from (warnings,
    ESTIMATE messages): a stream without it would warn about stream ``."""
    definitions = _raw_manifest()["definitions"]["streams"]
    assert sorted(definitions) == sorted(_manifest_stream_names())
    for key, stream in definitions.items():
        assert stream["name"] == key, f"definitions.streams.{key} is named {stream['name']!r}"
        assert stream.get("$parameters") == {"name": key}, f"stream {key}: $parameters must be {{name: {key}}}"


def test_the_streams_list_refers_to_every_definition_once():
    refs = [stream["$ref"] for stream in _raw_manifest()["streams"]]
    assert len(refs) == len(set(refs))
    assert sorted(refs) == sorted(f"#/definitions/streams/{name}" for name in _raw_manifest()["definitions"]["streams"])


def test_the_docs_configuration_table_lists_the_visible_spec_fields_in_order():
    properties = _spec_properties()
    visible = sorted((name for name, field in properties.items() if not field.get("airbyte_hidden")), key=lambda n: properties[n]["order"])
    rows = _table_rows(_section(DOCS.read_text(encoding="utf-8"), "Configuration"))
    assert [row[0].strip("`") for row in rows] == visible
    for row in rows:
        assert row[1] == properties[row[0].strip("`")]["title"], f"docs/allo.md's title of {row[0]} differs from the spec"


def test_removed_and_hidden_settings():
    properties = _spec_properties()
    assert "request_timeout_seconds" not in properties and "num_workers" not in properties
    hidden = properties["fail_on_missing_scope"]
    assert hidden["airbyte_hidden"] is True and hidden["default"] is False
    assert [name for name, field in properties.items() if field.get("airbyte_hidden")] == ["fail_on_missing_scope"]
    assert len({field["order"] for field in properties.values()}) == len(properties), "two spec fields share an `order`"


def test_the_default_api_host_is_an_allowed_host_and_the_docs_url_matches():
    from urllib.parse import urlsplit

    metadata = _metadata()
    default_host = urlsplit(_spec_properties()["api_url"]["default"]).hostname
    assert default_host in metadata["allowedHosts"]["hosts"]
    assert _raw_manifest()["spec"]["documentation_url"] == metadata["documentationUrl"]


def test_the_manifest_version_is_within_the_cdk_pin():
    from packaging.specifiers import SpecifierSet

    tree = ast.parse(SETUP_PY.read_text(encoding="utf-8"))
    pins = [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("airbyte-cdk")
    ]
    assert len(pins) == 1, f"setup.py pins airbyte-cdk {len(pins)} times"
    specifier = SpecifierSet(pins[0][len("airbyte-cdk"):])
    version = str(_raw_manifest()["version"])
    assert version in specifier, f"manifest version {version} is outside setup.py's {pins[0]}"

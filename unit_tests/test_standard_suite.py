"""The CDK's standard test suite for declarative sources, run in-process from acceptance-test-config.yml
against the fake Allo API (served here on the port the configs name).

`DeclarativeSourceTestSuite` runs the connector the way Airbyte's `source-declarative-manifest` runner
does: a `ConcurrentDeclarativeSource` given `manifest.yaml` as `__injected_manifest` and the text of
`components.py` as `__injected_components_py` (checked against its md5, then exec'd and registered as
`source_declarative_manifest.components`). Nothing of the `source_allo` package is used, so this also
proves that the two files are the whole connector.
"""

import sys
from pathlib import Path

import pytest
from boltons.typeutils import classproperty

from airbyte_cdk.test.standard_tests import DeclarativeSourceTestSuite

from integration_tests.fake_allo_api import Dataset, FakeAlloApi

STANDARD_PORT = 48765  # the port in integration_tests/{sample,standard,invalid}_config.json
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "source_allo"
# The names under which the CDK registers the injected components.py.
COMPONENTS_MODULE_NAMES = ("source_declarative_manifest.components", "components")


@pytest.fixture(scope="module", autouse=True)
def fake_allo_api():
    with FakeAlloApi(dataset=Dataset(seed=42, scale="small"), port=STANDARD_PORT) as api:
        yield api


@pytest.fixture(scope="module", autouse=True)
def injected_components_allowed():
    """The runner executes injected components.py only with AIRBYTE_ENABLE_UNSAFE_CODE=true. The CDK also
    replaces the registered components module with the exec'd copy: both are undone after this module, so
    that tests run later still see the packaged `source_allo.components`."""
    saved = {name: sys.modules.get(name) for name in COMPONENTS_MODULE_NAMES}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRBYTE_ENABLE_UNSAFE_CODE", "true")
        yield
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


class TestAlloStandardSuite(DeclarativeSourceTestSuite):
    # The connector root (acceptance-test-config.yml, integration_tests/) is the repository; the
    # manifest and its components live in the package directory.

    @classproperty
    def manifest_yaml_path(cls) -> Path:
        return PACKAGE_DIR / "manifest.yaml"

    @classproperty
    def components_py_path(cls) -> Path:
        return PACKAGE_DIR / "components.py"


def test_the_suite_runs_the_injected_components_not_the_package():
    """Guards the two overrides above: without them the suite would find no manifest (FileNotFoundError)
    or, worse, run without components.py."""
    connector = TestAlloStandardSuite.create_connector(None)
    assert TestAlloStandardSuite.manifest_yaml_path.is_file()
    module = connector.components_module
    assert module is not None
    assert module is sys.modules["source_declarative_manifest.components"]
    # exec'd from the injected text: a fresh module named `components`, not the package's module.
    assert module.__name__ == "components"
    assert "source_allo" not in (getattr(module, "__file__", None) or "")
    assert hasattr(module, "RepairAlloState") and hasattr(module, "AlloPagination")

"""Packaging for source-allo: the single place that declares dependencies."""

from pathlib import Path

from setuptools import find_packages, setup

VERSION = "0.2.0"

MAIN_REQUIREMENTS = [
    # Tested minor only: a private CDK method changed signature between 7.28 and 7.39; move after a full suite run on the new minor.
    "airbyte-cdk>=7.39.1,<7.40",
]

TEST_REQUIREMENTS = [
    "pytest>=8",
    "requests-mock>=1.12",
    # PyAirbyte: the real client used by the end-to-end test and the demo.
    # It supports Python < 3.13 only, so the development venv stays on 3.10-3.12
    # (run.sh); the connector itself also runs on 3.13, its image's Python.
    'airbyte==0.71.3; python_version < "3.13"',
]

setup(
    name="airbyte-source-allo",
    version=VERSION,
    description="Airbyte source connector for Allo (withallo.com): calls, SMS, transcripts, AI summaries, contacts, team.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8")
    if Path(__file__).with_name("README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    license="MIT",
    # The Python versions airbyte-cdk supports (its Requires-Python), 3.13 included:
    # the connector image's base (python-connector-base 4.1.0) runs Python 3.13.
    python_requires=">=3.10,<3.15",
    packages=find_packages(include=["source_allo", "source_allo.*"]),
    package_data={"source_allo": ["manifest.yaml", "schemas/*.json"]},
    install_requires=MAIN_REQUIREMENTS,
    extras_require={"tests": TEST_REQUIREMENTS},
    entry_points={"console_scripts": ["source-allo=source_allo.run:main"]},
)

# Container image for the Airbyte source connector source-allo, in the style of
# Airbyte's Python connector template.
#
# The base is pinned by digest. On machines that cannot reach a registry,
# scripts/container_test.sh builds a local stand-in and passes
#   --build-arg BASE_IMAGE=docker.io/airbyte/python-connector-base:4.1.0
# because a digest can only be satisfied by the real image from a registry,
# never by a locally tagged one.
#
# python-connector-base 4.1.0 runs Python 3.13. BASE_PYTHON_VERSION records it
# (major.minor): the build below and scripts/container_test.sh (which builds a
# stand-in with that same Python when the real base is out of reach) fail when
# the base's Python differs. Change both lines together.
ARG BASE_PYTHON_VERSION=3.13
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.1.0@sha256:1d1aa21d34e851df4e8a87b391c27724c06e2597608e7161f4d167be853bd7b6
FROM ${BASE_IMAGE}
ARG BASE_PYTHON_VERSION

LABEL io.airbyte.name="airbyte/source-allo" \
      io.airbyte.version="0.2.0"

# The base may already switch to its non-root user; installing needs root.
USER root
WORKDIR /airbyte/integration_code

# Fail early when the base's Python is not the one recorded above.
RUN found=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
 && if [ "$found" != "$BASE_PYTHON_VERSION" ]; then \
      echo "the base image runs Python $found, BASE_PYTHON_VERSION says $BASE_PYTHON_VERSION" >&2; exit 1; \
    fi

# The connector runs as the non-root user `airbyte` (uid 1000). The real base
# image ships it; create it when the base lacks it.
RUN id -u airbyte >/dev/null 2>&1 \
 || useradd --uid 1000 --user-group --create-home --shell /bin/bash airbyte

# Dependencies first, in their own layer, so that a change to the connector's
# code or README does not reinstall them. With only setup.py copied,
# find_packages() finds nothing and this installs the dependencies (and the
# entry point).
COPY setup.py ./
RUN pip install --no-cache-dir .

# Then the package itself (setup.py reads README.md for its long description;
# README.m[d] is a glob so that the build does not need it).
COPY setup.py README.m[d] ./
COPY source_allo ./source_allo
RUN pip install --no-cache-dir --no-deps . \
 && rm -rf build ./*.egg-info \
 && cd / && python -c "import source_allo.run" \
 && command -v source-allo

ENV AIRBYTE_ENTRYPOINT="source-allo"
ENTRYPOINT ["source-allo"]

USER airbyte

# gpudoctor in a container, judging the host mounted at /host (README "In a container"; deploy/ for Kubernetes).
#
#   docker build -t gpudoctor .                      # on python:3.12-slim
#   docker build --build-arg BASE=my-registry/python:3.11 -t gpudoctor .
#
# BASE is any image with python3 (3.10 or newer) and pip. Where no registry is reachable (CI), the base is a
# rootfs of Debian's own python3 (scripts/python_base_rootfs.py, then `docker import`) and pip installs from a
# wheelhouse in the build context: --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/src/.wheels
# (tests/test_image.py). pip reads both from the environment; every RUN is exec form, so the base needs no shell.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1
COPY . /src
# --target: one self-contained directory whatever the base's layout (site-packages or Debian's dist-packages).
RUN ["python3", "-m", "pip", "install", "--no-cache-dir", "--no-compile", "--target", "/opt/gpudoctor", "/src"]

FROM ${BASE}
COPY --from=build /opt/gpudoctor /opt/gpudoctor
ENV PYTHONPATH=/opt/gpudoctor PATH=/opt/gpudoctor/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONUTF8=1
# Checks, not the pip step, check that the image works: `gpudoctor --version` is the smallest whole run.
RUN ["gpudoctor", "--version"]
# Non-root: reading the host under /host needs no privilege except /proc/<dockerd pid>/environ (root only; the
# report says when it could not be read). Reaching the Docker socket needs its group: run with
# `--group-add $(stat -c %g /var/run/docker.sock)`, or `--user 0` to read everything a root run reads.
USER 65532:65532
ENTRYPOINT ["gpudoctor"]
CMD ["check", "--root", "/host"]

"""Documentation links that fixes point to, named once (checks and the probe-error mapping share them)."""

TOOLKIT_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest"
TOOLKIT_INSTALL = f"{TOOLKIT_DOCS}/install-guide.html"
TOOLKIT_TROUBLESHOOTING = f"{TOOLKIT_DOCS}/troubleshooting.html"
TOOLKIT_CDI = f"{TOOLKIT_DOCS}/cdi-support.html"
DRIVER_GUIDE = "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/index.html"
DOCKER_IMAGE_TAG_DOC = "https://docs.docker.com/reference/cli/docker/image/tag/"

"""Where CDI specs are looked for when nothing says otherwise: Docker's and the CDI library's default spec dirs
(docs/docker-gpu-internals.md §2.1; tags.cncf.io/container-device-interface pkg/cdi DefaultSpecDirs)."""

DEFAULT_DIRS = ("/etc/cdi", "/var/run/cdi")

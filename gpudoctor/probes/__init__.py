"""Probe containers: one per GPU request form, each reporting what it sees, compared with the host.

`forms` is the request-form catalogue; `probe.sh` runs inside each container; `parse` reads its
report; `runner` launches the containers (the only module here that touches the machine);
`compare` judges what each probe saw against NVML's view of the host (pure functions).
"""

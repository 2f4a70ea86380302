"""The pitfall catalogue: our pitfall ids → the failure mode they belong to (failure-modes.md).

One place for the mapping, so every pitfall names its failure mode the same way and tests can
assert that §10 (entries 45–53) is covered.
"""

from __future__ import annotations

from .model import ErrorText, Pitfall

# failure-mode name → number in failure-modes.md
FAILURE_MODES = {
    "driver-capabilities-wrong": 36,
    "no-gpu-device-driver-in-dockerd": 17,
    "runtime-not-registered": 18,
    "runtime-or-hook-binary-missing": 19,
    "toolkit-package-version-skew": 22,
    "ldconfig-path-wrong": 23,
    "cdi-spec-stale": 27,
    "cdi-not-enabled-in-docker": 25,
    "cdi-spec-missing-or-unreadable": 26,
    "docker-client-too-old": 44,
    "no-gpu-requested": 45,
    "gpus-count-is-not-index": 46,
    "gpus-device-list-quoting": 47,
    "api-devicerequest-shape": 48,
    "compose-gpu-syntax": 49,
    "visible-devices-semantics": 50,
    "index-ordering-confusion": 51,
    "mig-device-naming": 52,
    "privileged-breaks-isolation": 53,
}

# pitfall id → failure-mode name
PITFALLS = {
    "request.no-gpu": "no-gpu-requested",
    "request.raw-device-nodes": "no-gpu-requested",
    "env.visible-devices-without-runtime": "visible-devices-semantics",
    "gpus.count-not-index": "gpus-count-is-not-index",
    "request.count-zero": "gpus-count-is-not-index",
    "host.count-exceeds-gpus": "gpus-count-is-not-index",
    "gpus.unquoted-device-list": "gpus-device-list-quoting",
    "gpus.unquoted-list": "gpus-device-list-quoting",
    "gpus.space-after-comma": "gpus-device-list-quoting",
    "gpus.unknown-key": "gpus-device-list-quoting",
    "gpus.key-repeated": "gpus-device-list-quoting",
    "gpus.bad-count": "gpus-device-list-quoting",
    "gpus.csv-quoting": "gpus-device-list-quoting",
    "gpus.empty": "gpus-device-list-quoting",
    "gpus.bad-options": "gpus-device-list-quoting",
    "gpus.count-overridden": "gpus-device-list-quoting",
    "gpus.repeated-flag": "gpus-device-list-quoting",
    "request.empty-device-id": "gpus-device-list-quoting",
    "request.count-and-device-ids": "api-devicerequest-shape",
    "request.no-capabilities": "api-devicerequest-shape",
    "request.capabilities-flat": "api-devicerequest-shape",
    "request.device-ids-not-strings": "api-devicerequest-shape",
    "sdk.client-error": "api-devicerequest-shape",
    "sdk.ignored-keyword": "api-devicerequest-shape",
    "sdk.runtime-top-level": "api-devicerequest-shape",
    "cdi.count-or-options": "api-devicerequest-shape",
    "request.capability-unknown": "driver-capabilities-wrong",
    "request.capabilities-narrow": "driver-capabilities-wrong",
    "compose.missing-capabilities": "compose-gpu-syntax",
    "compose.split-device-item": "compose-gpu-syntax",
    "compose.count-and-device-ids": "compose-gpu-syntax",
    "compose.bad-count": "compose-gpu-syntax",
    "compose.unknown-key": "compose-gpu-syntax",
    "compose.device-ids-not-strings": "compose-gpu-syntax",
    "compose.bad-gpus": "compose-gpu-syntax",
    "env.overridden-by-gpus": "visible-devices-semantics",
    "env.all-wins": "visible-devices-semantics",
    "env.cuda-visible-devices": "index-ordering-confusion",
    "request.mig-legacy-name": "mig-device-naming",
    "host.mig-whole-gpu": "mig-device-naming",
    "host.unknown-device": "index-ordering-confusion",
    "request.privileged-all-gpus": "privileged-breaks-isolation",
    "request.cdi-name-in-gpus": "cdi-not-enabled-in-docker",
    "cdi.bad-name": "cdi-spec-missing-or-unreadable",
    "cdi.uuid-name": "cdi-spec-missing-or-unreadable",
    "runtime.not-registered": "runtime-not-registered",
    # What the behaviour model says this host does (explain with host facts); the failure mode is the cause's.
    "host.refused": "no-gpu-device-driver-in-dockerd",
}


def pitfall(pid: str, severity: str, summary: str, detail: str, errors: tuple[ErrorText, ...] = (), subject: str | None = None,
            mode: str | None = None) -> Pitfall:
    mode = mode if mode in FAILURE_MODES else PITFALLS[pid]
    return Pitfall(pid, mode, FAILURE_MODES[mode], severity, summary, detail, tuple(errors), subject)

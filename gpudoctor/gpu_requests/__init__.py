"""The one model of a GPU request and of what a container engine and the NVIDIA Container Toolkit do with it.

* `request`   — the request (DeviceRequests, runtime, NVIDIA_* environment, CDI names) and the host's GPUs;
* `spelling`  — one intended request written as docker CLI, Docker SDK and Compose;
* `texts`     — the exact refusal texts of the engine, the hook, the runtime and nvidia-container-cli;
* `stack`     — what this host's engine and toolkit are (version, hooks found at start, runtimes, mode, specs);
* `behaviour` — which path serves a request on a stack, what it yields, or how it is refused.

Checks, probes and `gpudoctor explain` all read these modules; nothing here reads the machine.
"""

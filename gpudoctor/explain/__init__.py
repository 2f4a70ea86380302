"""`gpudoctor explain`: what a GPU request really means, and what is wrong with it (issue 6).

Import-light on purpose: `gpudoctor --help` imports the CLI, which must not pull in YAML, Rich or
the Docker SDK. The entry point is `gpudoctor.explain.command.explain_command`; the parsers
(`gpus_flag`, `cmdline`, `sdk`, `compose`, `visible_devices`) and `analysis` are pure functions of
their input text (and of host GPU facts handed in), never of the machine.
"""

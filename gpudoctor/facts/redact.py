"""Credentials out of support bundles: the one place that decides what is a secret and blanks it.

A bundle (`gpudoctor facts --record`) is made to be sent to someone else, and it holds what the
host answered: daemon.json and config.toml verbatim, CDI specs, dockerd's command line, the probe
image's `Env`, the probe's environment dump, `DOCKER_HOST`, the daemon's `/info` (issue 14). Every
recorded answer passes through `redact` (gpudoctor/facts/host.py, RecordingHost), which replaces

* the userinfo of URLs (`https://user:pass@mirror`, `tcp://user:pass@host:2376`; a bare
  `user:pass@proxy:3128` under a proxy setting, which Go's proxy parser accepts without a scheme);
  an ssh user without a password is kept (`ssh://deploy@host` names an account, not a credential);
* the value of every key, variable or option whose name says token, password, secret, auth,
  credential, cookie or ends in "key" (`splunk-token`, `GITHUB_TOKEN=…`, `AWS_SECRET_ACCESS_KEY`,
  `"password": …`), in JSON, TOML, YAML, env-file and command-line spellings;
* `Bearer`/`Basic` credentials in header-like text.

Values are replaced, never structure: keys, list lengths and the syntax of the file stay, so a
replay parses daemon.json, config.toml and CDI specs exactly as the checks expect (runtimes,
default runtime, modes, spec dirs). `redact` is idempotent, and a replay looks answers up by the
redacted question, so replay keys are the same whether the bundle was redacted or not.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "REDACTED"

# Words (after splitting camelCase, snake_case, kebab-case and dotted names) that make a name a secret.
SECRET_WORDS = frozenset({
    "token", "tokens", "password", "passwords", "passwd", "passphrase", "pass",
    "secret", "secrets", "auth", "auths", "authorization", "credential", "credentials", "creds",
    "cookie", "cookies", "apikey", "accesskey", "secretkey", "privatekey", "bearer",
})
# The same glued into longer words: authtoken, dbpassword, clientsecret.
SECRET_PARTS = ("token", "passw", "secret", "credential", "apikey")

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name)]


def is_secret_name(name: str) -> bool:
    """Does this key / variable / option name hold a credential?"""
    words = _words(name)
    if not words:
        return False
    if any(w in SECRET_WORDS for w in words):
        return True
    if any(p in "".join(words) for p in SECRET_PARTS):
        return True
    # api-key, AWS_SECRET_ACCESS_KEY, sshKey; a lone "key" (a probe's spec key) is not one.
    return len(words) >= 2 and words[-1] == "key"


def is_proxy_name(name: str) -> bool:
    return any(w in ("proxy", "proxies") for w in _words(name))


# scheme://userinfo@ — userinfo stops at the first character that cannot be in it.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#@\"'<>\\\x00]+)@")
# user:pass@host at the start of a proxy value given without a scheme.
_BARE_USERINFO = re.compile(r"^(?P<userinfo>[^\s/@:\"']+:[^\s/@\"']*)@")
# A credential after Bearer/Basic: 8+ token characters, one of them not a letter ("Basic Input" is prose).
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>Bearer|Basic)(?P<gap>[ \t]+)(?=[A-Za-z0-9._~+/=\-]*[0-9._~+/=\-])(?P<cred>[A-Za-z0-9._~+/=\-]{8,})"
)

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
# YAML `key: value` with an unquoted value that runs to the end of the line (a comment excepted).
_YAML_LINE = re.compile(
    rf"^(?P<lead>[ \t]*(?:-[ \t]+)?)(?P<key>{_NAME})(?P<sep>[ \t]*:[ \t]+)"
    r"(?P<val>[^\s\"'#{\[&*|>!][^\n#]*?)(?P<tail>[ \t]+#[^\n]*)?[ \t]*$",
    re.MULTILINE,
)
# key/value pairs in any spelling: "key": "v" (JSON), key = "v" (TOML), KEY=v (env, argv), key: 'v'.
_PAIR = re.compile(
    rf"(?P<lead>^[ \t]*)?(?<![A-Za-z0-9_.\-])(?P<q>[\"']?)(?P<key>-{{0,2}}{_NAME})(?P=q)(?P<sep>[ \t]*[:=][ \t]*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"',;}\]\x00#&]+)",
    re.MULTILINE,
)


def _userinfo(m: re.Match[str]) -> str:
    scheme, info = m.group("scheme"), m.group("userinfo")
    if info == REDACTED or (scheme.lower() == "ssh://" and ":" not in info):
        return m.group(0)
    return f"{scheme}{REDACTED}@"


def _bare_userinfo(text: str) -> str:
    return _BARE_USERINFO.sub(f"{REDACTED}@", text)


def _yaml_line(m: re.Match[str]) -> str:
    if not is_secret_name(m.group("key")):
        return m.group(0)
    return f'{m.group("lead")}{m.group("key")}{m.group("sep")}"{REDACTED}"{m.group("tail") or ""}'


def _pair(m: re.Match[str]) -> str:
    key, val = m.group("key"), m.group("val")
    head = f'{m.group("lead") or ""}{m.group("q")}{key}{m.group("q")}{m.group("sep")}'
    if not is_secret_name(key):
        if is_proxy_name(key):  # "http-proxy": "user:pass@proxy:3128"
            quote = val[0] if val[0] in "\"'" else ""
            return head + quote + _bare_userinfo(val[len(quote):])
        return m.group(0)
    if val.strip("\"'") == REDACTED:
        return m.group(0)
    if val[0] in "\"'":
        return f"{head}{val[0]}{REDACTED}{val[0]}"
    # A bare value after a quoted key or at the start of a line of a file is a JSON/TOML/env scalar:
    # quote it so that the file still parses. Inside a string ("GITHUB_TOKEN=…" in a list) keep it bare.
    # A one-line string is a value of its own (an env entry, an argv word): it stays bare.
    if m.group("q") or (m.group("lead") is not None and "\n" in m.string):
        return f'{head}"{REDACTED}"'
    return f"{head}{REDACTED}"


def redact_text(text: str) -> str:
    """Free text (a file, command output, a command line, an error message) with credentials blanked."""
    if not text:
        return text
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')}{m.group('gap')}{REDACTED}", text)
    if ":" in text:
        text = _YAML_LINE.sub(_yaml_line, text)
    if ":" in text or "=" in text:
        text = _PAIR.sub(_pair, text)
    return text


def redact(value: Any, name: str | None = None) -> Any:
    """A copy of a JSON value with credentials replaced by REDACTED; `name` is the key (or variable
    name) the value is stored under, which decides whether the whole value is a secret."""
    if isinstance(value, str):
        if name is not None and value and is_secret_name(name):
            return REDACTED
        text = redact_text(value)
        if name is not None and is_proxy_name(name):
            text = _bare_userinfo(text)
        return text
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return REDACTED if name is not None and is_secret_name(name) else value
    if isinstance(value, Mapping):
        return {redact_text(str(k)): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, name) for v in value]
    return value

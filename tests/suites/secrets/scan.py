#!/usr/bin/env python3
"""Finds secret values in log files, in every form a log line could carry them.

Usage: scan.py SECRETS_TSV LOG...

SECRETS_TSV has one secret a line, `label<TAB>value`. For each value the scanner looks for:
the value itself; the part after a known prefix (`hpt_`); its last 16 characters (a
truncated or re-wrapped copy); its percent- and form-encoding; its lower-case hex; and its
base64 (standard and URL-safe alphabets) at each of the three byte alignments, so that it is
also found inside a longer encoded string such as `Authorization: Basic base64(id:secret)`.
It also looks for things that are secret whatever their value: JSON web tokens, age
identities, full API tokens, credential-bearing HTTP headers, `__Host-` cookie values and
fields named like secrets (pkce_verifier, password, nonce, ...) holding an unmasked value.
ANSI colour codes are removed from each line first.

Every hit is reported as `FILE:LINE: what (form): the line with every secret masked`; the
output never holds a secret. Exit status: 0 no hit, 1 hits, 2 usage error.
"""

import base64
import math
import re
import sys
import urllib.parse

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TAIL = 16
MIN_NEEDLE = 12
EDGE_BEFORE = re.compile(r"[A-Za-z0-9_+/=%-]{4,}(?=<[^<>]+>)")
EDGE_AFTER = re.compile(r"(?<=>)[A-Za-z0-9_+/=%-]{4,}")

# Secret whatever the value: (label, pattern).
PATTERNS = [
    ("a JSON web token", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("an age identity", re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{20,}", re.IGNORECASE)),
    ("an API token", re.compile(r"hpt_[A-Za-z0-9_-]{43}")),
    ("an Authorization header value",
     re.compile(r"authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic)\s+(?!\*|\[|<|\.\.\.)[A-Za-z0-9._~+/=-]{8,}",
                re.IGNORECASE)),
    ("a session or flow cookie value", re.compile(r"__Host-[A-Za-z0-9_-]+=(?!;|\*|\s|\")[^;\s\"]{8,}")),
    # A field named for a secret, with a value that is not masked, a path or a placeholder.
    ("a secret-named field with a value",
     re.compile(r"(?<![A-Za-z0-9_])[\"']?(?:pkce_verifier|code_verifier|client_secret|password|passwd|"
                r"access_token|id_token|refresh_token|csrf_token|nonce|bind_password|secret|credential)"
                r"[\"']?\s*[:=]\s*(?:Some\()?(?:String\()?[\"']?(?![*<\[/]|Secret|REDACTED|redacted)"
                r"[A-Za-z0-9_~.+/=-]{8,}")),
]


def base64_needles(value: bytes):
    """The base64 text that encodes `value` wherever it sits in a longer string."""
    out = []
    n = len(value)
    for k in range(3):
        padded = b"\0" * k + value
        first = math.ceil(8 * k / 6)
        last = (8 * (k + n)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(padded).decode("ascii").rstrip("=")
            piece = text[first:last]
            if len(piece) >= MIN_NEEDLE:
                out.append(piece)
    return out


def needles(value: str):
    """(form, needle) pairs for one secret value."""
    forms = [("verbatim", value)]
    if value.startswith("hpt_"):
        forms.append(("without its hpt_ prefix", value[4:]))
    if len(value) >= TAIL + 8:
        forms.append((f"its last {TAIL} characters", value[-TAIL:]))
    quoted = urllib.parse.quote(value, safe="")
    if quoted != value:
        forms.append(("percent-encoded", quoted))
    plus = urllib.parse.quote_plus(value, safe="")
    if plus not in (value, quoted):
        forms.append(("form-encoded", plus))
    forms.append(("hex", value.encode().hex()))
    for piece in base64_needles(value.encode()):
        forms.append(("base64", piece))
    seen = set()
    unique = []
    for form, needle in forms:
        if len(needle) >= MIN_NEEDLE and needle not in seen:
            seen.add(needle)
            unique.append((form, needle))
    return unique


def load_secrets(path):
    secrets = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            label, sep, value = line.partition("\t")
            if not sep or not value:
                raise ValueError(f"{path}:{number}: not `label<TAB>value`")
            if len(value) < MIN_NEEDLE:
                raise ValueError(f"{path}:{number}: {label}: shorter than {MIN_NEEDLE} characters")
            secrets.append((label, value))
    return secrets


def mask(line, table):
    for label, pattern in PATTERNS:
        line = pattern.sub(f"<{label}>", line)
    for needle, label in table:
        line = line.replace(needle, f"<{label}>")
    # What touches a masked part may be the rest of the same secret.
    line = EDGE_BEFORE.sub("…", EDGE_AFTER.sub("…", line))
    if len(line) > 400:
        line = line[:400] + "…"
    return line


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        secrets = load_secrets(argv[1])
    except (OSError, ValueError) as e:
        print(f"scan.py: {e}", file=sys.stderr)
        return 2
    table = []
    for label, value in secrets:
        for form, needle in needles(value):
            table.append((needle, label, form))
    # Longest first, so masking never leaves the tail of a longer needle behind.
    table.sort(key=lambda t: len(t[0]), reverse=True)
    mask_table = [(needle, label) for needle, label, _ in table]

    hits = 0
    lines = 0
    for path in argv[2:]:
        try:
            f = open(path, encoding="utf-8", errors="replace")
        except OSError as e:
            print(f"scan.py: {e}", file=sys.stderr)
            return 2
        with f:
            for number, raw in enumerate(f, 1):
                lines += 1
                line = ANSI.sub("", raw.rstrip("\n"))
                # One hit per secret and line, in its longest form found.
                found = []
                for needle, label, form in table:
                    if needle in line and all(label != seen for seen, _ in found):
                        found.append((label, form))
                if not found:
                    for label, pattern in PATTERNS:
                        if pattern.search(line):
                            found.append((label, "pattern"))
                for label, form in found:
                    hits += 1
                    print(f"{path}:{number}: {label} ({form}): {mask(line, mask_table)}")
    print(f"# scanned {lines} lines in {len(argv) - 2} files for {len(secrets)} secrets "
          f"({len(table)} forms) and {len(PATTERNS)} patterns: {hits} hits")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Prints examples/portcullis.toml with its commented-out sections and keys
turned on, plus a [cluster] section, so config_load's seeds reach the
validation of every section, not only the ones the example enables.

usage: config_all_sections.py < examples/portcullis.toml > seed

A commented line becomes a line when it is a table header or a `key = value`
that is valid TOML on its own; a key that then clashes with one already set
is left commented (the example shows alternatives for some keys).
"""

import re
import sys
import tomllib

COMMENTED = re.compile(r"^# ?((\[\[?[a-z.-]+\]\]?.*)|([a-z][a-z0-9-]* *= .*))$")


def turned_on(line):
    m = COMMENTED.match(line)
    if not m:
        return line
    candidate = m.group(1)
    if not candidate.startswith("["):
        try:
            tomllib.loads(candidate)
        except tomllib.TOMLDecodeError:
            return line
    return candidate


lines = [turned_on(line) for line in sys.stdin.read().splitlines()]
lines += ["", "[cluster]", 'database = "postgres://portcullis@127.0.0.1:5432/portcullis"', 'node = "mx1"']
while True:
    text = "\n".join(lines) + "\n"
    try:
        tomllib.loads(text)
        break
    except tomllib.TOMLDecodeError as e:
        clash = re.search(r"line (\d+)", str(e))
        if not clash:
            raise
        lines[int(clash.group(1)) - 1] = "# " + lines[int(clash.group(1)) - 1]
sys.stdout.write(text)

#!/usr/bin/env python3
"""Prints the hidden fields of the first POST <form> in an HTML page whose action is ACTION.

Usage: form.py PAGE ACTION

One `name=value` a line (the value HTML-unescaped), for `curl --data-urlencode`. Exit 1 when
the page has no such form.
"""

import html.parser
import sys


class Forms(html.parser.HTMLParser):
    def __init__(self, action):
        super().__init__(convert_charrefs=True)
        self.action = action
        self.inside = False
        self.done = False
        self.fields = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if (tag == "form" and not self.done and a.get("action") == self.action
                and (a.get("method") or "").lower() == "post"):
            self.inside = True
        elif tag == "input" and self.inside and a.get("type") == "hidden" and a.get("name"):
            self.fields.append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
            self.done = True


def main(argv):
    if len(argv) != 3:
        print("usage: form.py PAGE ACTION", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        parser = Forms(argv[2])
        parser.feed(f.read())
    if not parser.done:
        print(f"form.py: no form with action {argv[2]} in {argv[1]}", file=sys.stderr)
        return 1
    for name, value in parser.fields:
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

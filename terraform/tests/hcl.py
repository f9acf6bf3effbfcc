#!/usr/bin/env python3
"""Parses every Terraform file (.tf, .tfvars) under a directory with
python-hcl2 (pinned in scripts/setup) and prints one JSON object
{relative path: parsed file}, so switchyard/tests/terraform.rs can check
the modules without a Terraform binary. Files that do not parse are listed
on stderr, each with its error, and the exit code is 1.

Usage: hcl.py DIR
"""

import json
import os
import sys

import hcl2


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[1]
    parsed, failed = {}, []
    for dirpath, dirnames, filenames in os.walk(root):
        # Provider and module caches of a local `terraform init`.
        dirnames[:] = sorted(d for d in dirnames if d != ".terraform")
        for name in sorted(filenames):
            if not name.endswith((".tf", ".tfvars")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            try:
                with open(path) as f:
                    parsed[rel] = hcl2.load(f)
            except Exception as e:  # lark raises several error types
                failed.append(f"{rel}: {type(e).__name__}: {e}")
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    json.dump(parsed, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

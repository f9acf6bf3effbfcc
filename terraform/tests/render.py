#!/usr/bin/env python3
"""Renders a Terraform template (`templatefile`) with only the syntax
Switchyard's templates use, so CI can check the rendered config without a
Terraform binary.

Supported, as Terraform evaluates it:
  ${PATH}               PATH = name(.attr)*; numbers, strings and bools
  ${jsonencode(PATH)}   Go's JSON encoding (<, >, & escaped as \\u003c ...)
  %{ for X in PATH }    ... %{ endfor }
  %{ if PATH != null }  %{ if PATH == "literal" }  %{ if PATH }
  %{ else }  %{ endif }
  strip markers: `~}` trims spaces, tabs and one newline after it;
                 `%{~` / `${~` trim spaces and tabs before it
Anything else (other functions, operators, `$${` escapes) is an error, so a
template change that this renderer would get wrong fails loudly instead.

Usage:
  render.py TEMPLATE VARS.json                 render with these variables
  render.py --example EXAMPLE_DIR TEMPLATE     render with the example's
      terraform.tfvars: vars = {cluster, hosted_zone_id}, as the
      switchyard-region module passes them (hosted_zone_id, known only
      after apply, is a placeholder).
"""

import json
import re
import sys

PLACEHOLDER_ZONE_ID = "Z0PLACEHOLDER0ZONE0ID"

TOKEN = re.compile(r"(\$\{|%\{)(~?)(.*?)(~?)\}", re.S)
PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*"


class TemplateError(Exception):
    pass


def lookup(path, scope):
    parts = path.split(".")
    if parts[0] not in scope:
        raise TemplateError(f"unknown variable {parts[0]!r} in {path!r}")
    value = scope[parts[0]]
    for attr in parts[1:]:
        if not isinstance(value, dict):
            raise TemplateError(f"{path!r}: {attr!r} of a non-object")
        # An optional attribute left out of an object is null in Terraform.
        value = value.get(attr)
    return value


def go_json(value):
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def to_string(value, expr):
    if value is None:
        raise TemplateError(f"${{{expr}}} is null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"${{{expr}}} is not a string, number or bool")


def evaluate(expr, scope):
    m = re.fullmatch(rf"jsonencode\(\s*({PATH})\s*\)", expr)
    if m:
        return go_json(lookup(m.group(1), scope))
    if re.fullmatch(PATH, expr):
        return to_string(lookup(expr, scope), expr)
    raise TemplateError(f"unsupported interpolation ${{{expr}}}")


def condition(expr, scope):
    m = re.fullmatch(rf"({PATH})\s*(==|!=)\s*(null|\"[^\"\\]*\")", expr)
    if m:
        left = lookup(m.group(1), scope)
        right = None if m.group(3) == "null" else m.group(3)[1:-1]
        return (left == right) == (m.group(2) == "==")
    if re.fullmatch(PATH, expr):
        value = lookup(expr, scope)
        if not isinstance(value, bool):
            raise TemplateError(f"%{{ if {expr} }}: not a bool")
        return value
    raise TemplateError(f"unsupported condition %{{ if {expr} }}")


def tokenize(text):
    """Literal strings and (kind, strip_left, body, strip_right) tags, with
    strip markers applied to the neighbouring literals."""
    if "$${" in text or "%%{" in text:
        raise TemplateError("escapes ($${ or %%{) are not supported")
    out, pos = [], 0
    for m in TOKEN.finditer(text):
        out.append(text[pos:m.start()])
        out.append((m.group(1), m.group(2) == "~", m.group(3).strip(), m.group(4) == "~"))
        pos = m.end()
    out.append(text[pos:])
    for i, tok in enumerate(out):
        if isinstance(tok, tuple):
            if tok[1] and i > 0:
                out[i - 1] = strip_left_marker(out[i - 1])
            if tok[3] and i + 1 < len(out):
                out[i + 1] = strip_right_marker(out[i + 1])
    return out


# Strip markers as Terraform 1.11's templatefile applies them (checked
# against `terraform console`): `~}` removes the spaces and tabs that
# follow and then at most one newline; `%{~` removes the spaces and tabs
# before it on its own line, never a newline.
def strip_right_marker(text):
    text = text.lstrip(" \t")
    for newline in ("\r\n", "\n"):
        if text.startswith(newline):
            return text[len(newline):]
    return text


def strip_left_marker(text):
    return text.rstrip(" \t")


def parse(tokens, i=0, until=()):
    """A tree of literals, ("expr", body), ("for", var, path, body) and
    ("if", cond, then, else); returns (nodes, index, closing keyword)."""
    nodes = []
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if isinstance(tok, str):
            nodes.append(tok)
            continue
        kind, _, body, _ = tok
        if kind == "${":
            nodes.append(("expr", body))
            continue
        word = body.split()[0] if body else ""
        if word in until:
            return nodes, i, word
        if word == "for":
            m = re.fullmatch(rf"for\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\s+({PATH})", body)
            if not m:
                raise TemplateError(f"unsupported %{{ {body} }}")
            inner, i, end = parse(tokens, i, ("endfor",))
            if end != "endfor":
                raise TemplateError("for without endfor")
            nodes.append(("for", m.group(1), m.group(2), inner))
        elif word == "if":
            then, i, end = parse(tokens, i, ("else", "endif"))
            other = []
            if end == "else":
                other, i, end = parse(tokens, i, ("endif",))
            if end != "endif":
                raise TemplateError("if without endif")
            nodes.append(("if", body[2:].strip(), then, other))
        else:
            raise TemplateError(f"unsupported directive %{{ {body} }}")
    if until:
        raise TemplateError(f"missing %{{ {until[-1]} }}")
    return nodes, i, None


def run(nodes, scope, out):
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "expr":
            out.append(evaluate(node[1], scope))
        elif node[0] == "for":
            items = lookup(node[2], scope)
            if not isinstance(items, list):
                raise TemplateError(f"for over {node[2]!r}: not a list")
            for item in items:
                run(node[3], {**scope, node[1]: item}, out)
        else:
            run(node[2] if condition(node[1], scope) else node[3], scope, out)


def render(template_text, variables):
    nodes, _, _ = parse(tokenize(template_text))
    out = []
    run(nodes, variables, out)
    return "".join(out)


def example_vars(example_dir):
    import hcl2  # the project venv's python-hcl2, pinned in scripts/setup

    with open(f"{example_dir}/terraform.tfvars") as f:
        tfvars = hcl2.load(f)
    # python-hcl2 wraps every top-level attribute's value in a list.
    cluster = tfvars["cluster"][0]
    return {"cluster": cluster, "hosted_zone_id": PLACEHOLDER_ZONE_ID}


def main(argv):
    if len(argv) == 4 and argv[1] == "--example":
        variables, template = example_vars(argv[2]), argv[3]
    elif len(argv) == 3:
        template = argv[1]
        with open(argv[2]) as f:
            variables = json.load(f)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    with open(template) as f:
        text = f.read()
    try:
        sys.stdout.write(render(text, variables))
    except TemplateError as e:
        print(f"{template}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

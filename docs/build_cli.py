"""Regenerate the command reference in docs/cli.md from the typer apps themselves.

    python docs/build_cli.py           # rewrite the generated part of docs/cli.md
    python docs/build_cli.py --check   # exit 1 (one line naming the first differing command) when stale

Only the text between the two marker lines is generated; everything before ``BEGIN`` (the hand-written
introduction, examples and notes) and after ``END`` is kept as it is. The reference is rendered from the
click Parameter objects of every command, subcommand and group of ``seegaan`` and ``seegaan-stats``
(``typer.main.get_command``): help text, usage line and, per option or argument, its names, type or
choices, default, whether it is required, its environment variable and its help. It never captures
``--help`` output, so it does not depend on the terminal width, on rich's colours and boxes, nor on rich
markup (text such as ``[report]`` is shown as written).

Only ``seegaan.cli.app`` and ``seegaan.cli.stats`` are imported (their ``app`` objects).
``tests/test_cli_reference.py`` runs :func:`check` and fails when the file is stale.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import os
import re
import sys
import tempfile
import typing
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CLI_MD = DOCS / "cli.md"
BEGIN = "<!-- BEGIN GENERATED: do not edit; python docs/build_cli.py -->"
END = "<!-- END GENERATED -->"
STALE = "docs/cli.md is stale: run python docs/build_cli.py"


# ---------------------------------------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------------------------------------


def programs() -> list[tuple[str, object]]:
    """``(program name, click command)`` of the two console scripts, in the order of the page."""
    import typer.main

    from seegaan.cli.app import app
    from seegaan.cli.stats import app as stats_app

    return [("seegaan", typer.main.get_command(app)), ("seegaan-stats", typer.main.get_command(stats_app))]


def _context(command, name: str, parent=None):
    """A context for ``command`` without parsing any arguments (the help option needs one)."""
    return command.context_class(command, info_name=name, parent=parent)


def _subcommands(command, ctx) -> list[tuple[str, object]]:
    if not hasattr(command, "list_commands"):
        return []
    found = []
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is not None and not getattr(sub, "hidden", False):
            found.append((name, sub))
    return found


def walk(name: str, command, parent=None, depth: int = 0):
    """``(command path, command, context, depth)`` of ``command`` and every subcommand below it."""
    ctx = _context(command, name, parent)
    yield ctx.command_path, command, ctx, depth
    for sub_name, sub in _subcommands(command, ctx):
        yield from walk(sub_name, sub, ctx, depth + 1)


def parameters(command, ctx) -> list:
    """The visible parameters of ``command`` in ``--help`` order (the help option included)."""
    return [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]


# ---------------------------------------------------------------------------------------------------------
# rendering a parameter (from its attributes, not from its help record)
# ---------------------------------------------------------------------------------------------------------

_TYPE_NAMES = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN", Path: "PATH"}
# click's ParamType.name of the same types (older typer, e.g. 0.15, hands click its types)
_CLICK_TYPE_NAMES = {
    "integer": "INTEGER",
    "float": "FLOAT",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "path": "PATH",
    "filename": "FILE",
    "file": "FILE",
    "uuid": "UUID",
}


def _choice(value) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value)


def _type_label(param) -> str:
    """``INTEGER``, ``FLOAT``, ``TEXT``, ``PATH`` or the choices ``a|b|c``, the same with typer 0.15 and 0.29."""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None:  # newer typer (e.g. 0.29): its own parameter model, no click ParamType
        choices = desc.choices
        if choices:
            return "|".join(_choice(c) for c in choices)
        if desc.is_path:
            return "PATH"
        annotation = desc.annotation
        if desc.is_list:
            (annotation,) = typing.get_args(annotation)
        return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)).upper())
    kind = param.type
    choices = getattr(kind, "choices", None)
    if choices:
        return "|".join(_choice(c) for c in choices)
    name = str(getattr(kind, "name", "text")).lower()
    return _CLICK_TYPE_NAMES.get(name, name.upper())


def _argument_name(param) -> str:
    return param.metavar or param.name.upper()


def _default_text(param) -> str | None:
    """The default as the reader would type it, or None when there is none to show."""
    show = getattr(param, "show_default", True)
    if isinstance(show, str):
        return f"({show})"
    if show is False:
        return None
    default = param.default
    if callable(default) and not isinstance(default, enum.Enum):
        return "(dynamic)"
    if default is None or (isinstance(default, (list, tuple)) and not default):
        return None
    if param.param_type_name == "option" and getattr(param, "is_flag", False):
        if param.secondary_opts:  # --bf16 / --no-bf16: the spelling that is on by default
            return (param.opts if default else param.secondary_opts)[0]
        return None if not default else "on"
    if isinstance(default, (list, tuple)):
        return ", ".join(_choice(d) for d in default)
    return _choice(default)


def _range_text(param) -> str | None:
    low = getattr(param, "min", None)
    high = getattr(param, "max", None)
    if low is None and high is None and hasattr(param, "type"):
        low, high = getattr(param.type, "min", None), getattr(param.type, "max", None)
    if low is None and high is None:
        return None
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f">= {low}" if low is not None else f"<= {high}"


def _envvars(param) -> list[str]:
    envvar = getattr(param, "envvar", None)
    if not envvar:
        return []
    return [envvar] if isinstance(envvar, str) else [str(e) for e in envvar]


def _is_repeatable(param) -> bool:
    return param.param_type_name == "option" and bool(getattr(param, "multiple", False))


def render_parameter(param) -> str:
    """One list item: ``* `--name TYPE` (required): help. Default: `x`. Environment variable: `X`.``"""
    if param.param_type_name == "argument":
        name = _argument_name(param) + ("..." if param.nargs != 1 else "")
        notes = [_type_label(param)] + (["required"] if param.required else [])
        head = f"`{name}` ({', '.join(notes)})"
    else:
        flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
        label = "" if flag else f" {_type_label(param)}"
        head = " / ".join(f"`{opt}{label}`" for opt in param.opts)
        if param.secondary_opts:
            head += " / " + " / ".join(f"`{opt}`" for opt in param.secondary_opts)
        notes = (["required"] if param.required else []) + (["repeatable"] if _is_repeatable(param) else [])
        if notes:
            head += f" ({', '.join(notes)})"
    sentences = [markdown_text(param.help)] if param.help else []
    default = _default_text(param)
    if default is not None:
        sentences.append(f"Default: `{default}`.")
    span = _range_text(param)
    if span is not None:
        sentences.append(f"Range: {span}.")
    for var in _envvars(param):
        sentences.append(f"Environment variable: `{var}`.")
    body = " ".join(_sentence(s) for s in sentences)
    return f"* {head}" + (f": {body}" if body else "")


def _sentence(text: str) -> str:
    """``text`` ending as a sentence (a help text without a final full stop gets one)."""
    return text if text.endswith((".", "!", "?", ".)", ".`")) else text + "."


# ---------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_LONE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_BLOCK_START = re.compile(r"^(#|>|[-+*] |\d+[.)] )")


def _escape(text: str) -> str:
    """Plain text safe in a Markdown paragraph or list item: no emphasis, strikethrough, HTML or links."""
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("~", "\\~")
    text = _LONE_UNDERSCORE.sub(r"\\_", text)
    text = _HTML_START.sub("&lt;", text)
    return text.replace("](", "]\\(")


def markdown_text(text: str) -> str:
    """A help text as one Markdown line: whitespace collapsed, backtick spans kept as code, the rest
    escaped (``*.pth`` must not start emphasis)."""
    text = " ".join(text.split())
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_escape(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape(text[last:]))
    line = "".join(out)
    start = _BLOCK_START.match(line)
    if start is None:
        return line
    if start[1][0].isdigit():  # "1. " would start a list: escape its full stop (a digit cannot be escaped)
        return re.sub(r"^(\d+)([.)])", r"\1\\\2", line)
    return "\\" + line


def _paragraphs(text: str | None) -> list[str]:
    if not text:
        return []
    text = text.split("\f")[0]  # click: help after \f is not shown
    return [markdown_text(p) for p in re.split(r"\n\s*\n", text.strip()) if p.strip() and p.strip() != "\b"]


def _short_help(command) -> str:
    """The first paragraph of a command's help, whole (``--help`` of a group may shorten it)."""
    if getattr(command, "short_help", None):
        return markdown_text(command.short_help)
    paragraphs = _paragraphs(command.help)
    return paragraphs[0] if paragraphs else ""


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation except - and _ dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _usage(path: str, command, ctx) -> str:
    pieces = [path]
    params = parameters(command, ctx)
    if any(p.param_type_name == "option" for p in params):
        pieces.append("[OPTIONS]")
    for p in params:
        if p.param_type_name == "argument":
            name = _argument_name(p)
            name = name if p.required else f"[{name}]"
            pieces.append(name + ("..." if p.nargs != 1 else ""))
    if hasattr(command, "list_commands"):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def render_command(path: str, command, ctx, depth: int) -> str:
    """The section of one command or group: heading, help, usage, arguments, options, subcommands."""
    lines = [f"{'#' * (depth + 2)} `{path}`", ""]
    if getattr(command, "deprecated", False):
        lines += ["*Deprecated.*", ""]
    for paragraph in _paragraphs(command.help):
        lines += [paragraph, ""]
    lines += ["**Usage**:", "", "```console", f"$ {_usage(path, command, ctx)}", "```", ""]
    params = parameters(command, ctx)
    for title, kind in (("Arguments", "argument"), ("Options", "option")):
        chosen = [p for p in params if p.param_type_name == kind]
        if chosen:
            lines += [f"**{title}**:", ""] + [render_parameter(p) for p in chosen] + [""]
    for paragraph in _paragraphs(getattr(command, "epilog", None)):
        lines += [paragraph, ""]
    subs = _subcommands(command, ctx)
    if subs:
        lines += ["**Commands**:", ""]
        for name, sub in subs:
            help_text = _short_help(sub)
            item = f"* [`{name}`](#{anchor(f'{path} {name}')})"
            lines.append(item + (f": {help_text}" if help_text else ""))
        lines.append("")
    return "\n".join(lines)


def render(commands: list[tuple[str, object]] | None = None) -> str:
    """The generated part of docs/cli.md (without the markers) for ``commands``, ``(name, click command)``
    pairs (default: :func:`programs`)."""
    commands = programs() if commands is None else commands
    sections = [
        render_command(path, cmd, ctx, depth)
        for name, command in commands
        for path, cmd, ctx, depth in walk(name, command)
    ]
    return "\n".join(sections).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------------------
# the file
# ---------------------------------------------------------------------------------------------------------


class MarkerError(ValueError):
    """docs/cli.md lacks the BEGIN/END lines (or has them twice, or out of order)."""


def split_file(text: str) -> tuple[str, str, str]:
    """``(before, generated, after)``: the text up to and including BEGIN, between, from END on."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise MarkerError(f"docs/cli.md needs one line {BEGIN!r} and, after it, one line {END!r}")
    b, e = begins[0], ends[0]
    return "".join(lines[: b + 1]), "".join(lines[b + 1 : e]), "".join(lines[e:])


def join_file(before: str, generated: str, after: str) -> str:
    return before + "\n" + generated.strip("\n") + "\n\n" + after


_HEADING = re.compile(r"^#{2,6} `(?P<path>[^`]+)`\s*$")


def sections(generated: str) -> list[tuple[str, str]]:
    """``(command path, its text)`` of every command section of a generated part, in order."""
    found: list[tuple[str, list[str]]] = [("(start of the generated part)", [])]
    for line in generated.strip("\n").splitlines():
        match = _HEADING.match(line)
        if match:
            found.append((match["path"], []))
        found[-1][1].append(line)
    out = [(path, "\n".join(body).strip("\n")) for path, body in found]
    return out if out[0][1] else out[1:]


def first_difference(expected: str, actual: str) -> str | None:
    """None when the two generated parts agree, else where they first differ, as a phrase."""
    if expected.strip("\n") == actual.strip("\n"):
        return None
    want, have = sections(expected), dict(sections(actual))
    for path, text in want:
        if path not in have:
            return f"`{path}` is missing"
        if have[path] != text:
            for old, new in itertools.zip_longest(have[path].splitlines(), text.splitlines(), fillvalue=""):
                if old != new:
                    item = re.match(r"\* \[?`([^`]+)`", new) or re.match(r"\* \[?`([^`]+)`", old)
                    return f"`{path}` differs" + (f", at `{item[1]}`" if item else "")
    extra = [path for path, _ in sections(actual) if path not in dict(want)]
    if extra:
        return f"`{extra[0]}` is not a command"
    return "the order of the commands differs"


def check(path: Path = CLI_MD, commands: list[tuple[str, object]] | None = None) -> str | None:
    """None when ``path`` holds the reference of ``commands``; else the one-line message of ``--check``."""
    try:
        _, generated, _ = split_file(Path(path).read_text(encoding="utf-8"))
    except MarkerError as exc:
        return f"{STALE} ({exc})"
    where = first_difference(render(commands), generated)
    return None if where is None else f"{STALE} (first difference: {where})"


def build(path: Path = CLI_MD, commands: list[tuple[str, object]] | None = None) -> bool:
    """Rewrite the generated part of ``path`` (atomically); True when the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    before, _, after = split_file(text)
    new = join_file(before, render(commands), after)
    if new == text:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(new)
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 with a one-line message when docs/cli.md is stale; write nothing"
    )
    parser.add_argument("--file", type=Path, default=CLI_MD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.check:
            message = check(args.file)
            if message:
                print(message, file=sys.stderr)
                return 1
            print(f"{args.file.name} is up to date")
            return 0
        changed = build(args.file)
    except MarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.file}" if changed else f"{args.file.name} is up to date")
    return 0


if __name__ == "__main__":
    # document this checkout's commands, not an installed copy of seegaan
    sys.path.insert(0, str(DOCS.parent))
    sys.exit(main())

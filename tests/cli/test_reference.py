"""docs/cli.md cannot drift from the commands: its reference part is what docs/build_cli.py renders from
the typer apps, every option of every command is in it, and the hand-written part names only real options."""

import copy
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI_MD = REPO / "docs" / "cli.md"
STALE = "docs/cli.md is stale: run python docs/build_cli.py"


@pytest.fixture(scope="module")
def build_cli():
    """docs/build_cli.py, imported by path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_cli", REPO / "docs" / "build_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands():
    """``{command path: click command}`` of every command and group, walked with click's API alone."""
    import typer.main

    from seegaan.cli.app import app
    from seegaan.cli.stats import app as stats_app

    found = {}

    def walk(path, command):
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk(f"{path} {name}", sub)

    walk("seegaan", typer.main.get_command(app))
    walk("seegaan-stats", typer.main.get_command(stats_app))
    return found


def _generated(build_cli) -> str:
    return build_cli.split_file(CLI_MD.read_text(encoding="utf-8"))[1]


def _handwritten(build_cli) -> str:
    return build_cli.split_file(CLI_MD.read_text(encoding="utf-8"))[0]


def test_reference_is_up_to_date(build_cli):
    message = build_cli.check(CLI_MD)
    if message is not None:
        pytest.fail(message if message.startswith(STALE) else f"{STALE} ({message})")


def test_every_option_of_every_command_is_in_the_file(build_cli):
    documented = dict(build_cli.sections(_generated(build_cli)))
    missing = []
    for path, command in _commands().items():
        if path not in documented:
            missing.append(path)
            continue
        text = documented[path]
        names = ["--help"]
        for param in command.params:
            if param.hidden:
                continue
            if param.param_type_name == "argument":
                names.append(param.metavar or param.name.upper())
            else:
                names += list(param.opts) + list(param.secondary_opts)
        missing += [f"{path} {name}" for name in names if not re.search(rf"\* (.* / )?`{re.escape(name)}[ `.]", text)]
    assert not missing, f"{STALE}: not in docs/cli.md: {', '.join(missing)}"


def _with_extra_option(build_cli, program: str, path: list[str], option: str):
    """The commands of the page with a copy of ``path``'s command that has one more option (a copy of its
    last non-help option renamed); the real commands are not touched."""
    commands = build_cli.programs()
    out = []
    for name, command in commands:
        if name == program:
            command = _replaced(command, path, option)
        out.append((name, command))
    return out


def _replaced(group, path, option):
    group = copy.copy(group)
    group.commands = dict(group.commands)
    head, rest = path[0], path[1:]
    if rest:
        group.commands[head] = _replaced(group.commands[head], rest, option)
        return group
    command = copy.copy(group.commands[head])
    template = [p for p in command.params if p.param_type_name == "option"][-1]
    extra = copy.copy(template)
    extra.name, extra.opts, extra.secondary_opts = option.lstrip("-").replace("-", "_"), [option], []
    command.params = list(command.params) + [extra]
    group.commands[head] = command
    return group


@pytest.mark.parametrize("program, path", [("seegaan-stats", ["interpolate"]), ("seegaan", ["model", "info"])])
def test_an_option_added_without_regenerating_fails_the_check(build_cli, program, path):
    changed = _with_extra_option(build_cli, program, path, "--not-documented")
    message = build_cli.check(CLI_MD, changed)
    assert message is not None and message.startswith(STALE)
    assert f"`{' '.join([program, *path])}` differs" in message
    assert "--not-documented" in message and "\n" not in message
    assert "--not-documented" in build_cli.render(changed)
    assert "--not-documented" not in build_cli.render()


def test_a_removed_command_and_a_changed_help_fail_the_check(build_cli):
    commands = build_cli.programs()
    name, stats = commands[1]
    fewer = copy.copy(stats)
    fewer.commands = {k: v for k, v in stats.commands.items() if k != "animate"}
    message = build_cli.check(CLI_MD, [commands[0], (name, fewer)])
    assert message.startswith(STALE) and "`seegaan-stats`" in message  # its list of commands changed first

    reworded = copy.copy(stats)
    reworded.commands = dict(stats.commands)
    table1 = reworded.commands["table1"] = copy.copy(stats.commands["table1"])
    table1.help = "Something else."  # also shown in the group's list of commands
    message = build_cli.check(CLI_MD, [commands[0], (name, reworded)])
    assert message.startswith(STALE) and "`seegaan-stats` differs, at `table1`" in message
    table1.help = stats.commands["table1"].help
    by = copy.copy(next(p for p in table1.params if p.name == "by"))
    by.help = "Another column."
    table1.params = [by if p.name == "by" else p for p in table1.params]
    message = build_cli.check(CLI_MD, [commands[0], (name, reworded)])
    assert message.startswith(STALE) and "`seegaan-stats table1` differs, at `--by TEXT`" in message


def test_build_rewrites_only_the_generated_part(build_cli, tmp_path):
    page = tmp_path / "cli.md"
    prose = "# Title\n\nHand-written *prose* with `--feature`.\n\n"
    page.write_text(f"{prose}{build_cli.BEGIN}\n\nold text\n### `seegaan gone`\n{build_cli.END}\n\nTail.\n")
    assert build_cli.check(page).startswith(STALE)
    assert build_cli.build(page) is True
    text = page.read_text()
    assert text.startswith(prose + build_cli.BEGIN + "\n") and text.endswith(f"{build_cli.END}\n\nTail.\n")
    assert "old text" not in text and build_cli.render() in text
    assert build_cli.check(page) is None and build_cli.build(page) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.md"]  # no temporary file left


def test_check_command_line(build_cli, tmp_path, capsys):
    page = tmp_path / "cli.md"
    page.write_text(CLI_MD.read_text(encoding="utf-8").replace("Default: `1000`.", "Default: `100`.", 1))
    assert build_cli.main(["--check", "--file", str(page)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(STALE) and "\n" not in err and "differs, at `--perm INTEGER`" in err
    page.write_text("# no markers\n")
    assert build_cli.main(["--check", "--file", str(page)]) == 1
    assert build_cli.main(["--file", str(page)]) == 1
    assert page.read_text() == "# no markers\n"


def test_defaults_read_as_typed(build_cli):
    documented = dict(build_cli.sections(_generated(build_cli)))
    assert (
        "* `--perm INTEGER`: Null draws B: sign flips or permutations (0 = decode only; 100 reproduces the paper). "
        "Default: `1000`." in documented["seegaan-stats interpolate"]
    )
    assert "* `--bf16` / `--no-bf16`: bfloat16 autocast. Default: `--no-bf16`." in documented["seegaan train"]
    assert (
        "`--salt TEXT`" in documented["seegaan encode"]
        and "Environment variable: `SEEGAAN_ID_SALT`." in documented["seegaan encode"]
    )
    assert "* `RESULTS...` (PATH, required)" in documented["seegaan-stats report"]
    assert "$ seegaan-stats report [OPTIONS] RESULTS...\n" in documented["seegaan-stats report"]


def test_the_page_renders_as_written(build_cli):
    """No help text turns into emphasis, strikethrough or HTML; every link inside the page (and every link
    into it from the other docs) reaches a heading."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough")
    text = CLI_MD.read_text(encoding="utf-8")
    html = md.render(build_cli.render())
    assert not re.findall(r"<(em|s|del)>.*?</\1>", html)
    assert "<!--" not in html and not re.search(r"<(?!/?(h\d|p|ul|li|code|pre|strong|a)\b)", html)
    tokens = md.parse(text)
    headings = {
        build_cli.anchor(tokens[i + 1].content.replace("`", ""))
        for i, t in enumerate(tokens)
        if t.type == "heading_open"
    }
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    for doc in (REPO / "docs").glob("*.md"):
        links |= set(re.findall(r"\]\(cli\.md#([^)]+)\)", doc.read_text(encoding="utf-8")))
    assert links <= headings, sorted(links - headings)


def test_handwritten_part_names_real_options(build_cli):
    """The examples use each command's own options; every option named in the prose exists somewhere."""
    commands = _commands()

    def names(command):
        return {
            n
            for p in command.params
            for n in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
            if n.startswith("-")
        } | {"--help"}

    everywhere = set().union(*(names(c) for c in commands.values()))
    top = _handwritten(build_cli)
    prose_options = set(re.findall(r"`(--[a-z0-9][a-z0-9-]*)", top))
    assert prose_options and prose_options <= everywhere, sorted(prose_options - everywhere)

    block = re.search(r"```bash\n(.*?)```", top, re.S)[1].replace("\\\n", " ")
    wrong, n_examples = [], 0
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        path = words.pop(0)
        while words and f"{path} {words[0]}" in commands:
            path = f"{path} {words.pop(0)}"
        assert path in commands and path not in ("seegaan", "seegaan-stats"), line
        n_examples += 1
        known = names(commands[path])
        wrong += [f"{path} {w}" for w in words if w.startswith("--") and w.split("=")[0] not in known]
    assert n_examples >= 10 and not wrong, wrong

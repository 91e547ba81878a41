"""MkDocs hooks (mkdocs.yml `hooks:`): the command reference is generated from the parser itself.

`reference/commands.md` is not a file in docs/: at each build it is rendered from the argparse parser of
`manage.py tablemigrate` (every command, argument and option, its default and help text, and the exit codes),
so an option added to the parser is on the site at the next build and no option list can go stale.
`python scripts/docs_hooks.py` prints the page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = "reference/commands.md"

INTRO = """# Commands and options

Generated from the parser of `manage.py tablemigrate` at each build of this site: every command, argument
and option is here, with the help text `manage.py tablemigrate COMMAND --help` prints. What each command
does in depth: [How generate and run work](../explanation/how-it-works.md); the safety of `run`:
[The safety model](../explanation/safety.md). `manage.py migrate` on a project where tablemigrate owns
tables is `tablemigrate run` ([Coming from Django migrations](django.md)).

```text
python manage.py tablemigrate COMMAND [options]
```
"""


def tablemigrate_parser() -> argparse.ArgumentParser:
    """The parser `manage.py tablemigrate` uses, with minimal settings when none are configured."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "tablemigrate"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
        django.setup()
    from tablemigrate.management.commands.tablemigrate import Command

    return Command().create_parser("manage.py", "tablemigrate")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`"
    takes_value = action.nargs != 0
    metavar = action.metavar or (action.dest.upper() if takes_value else "")
    return ", ".join(f"`{o} {metavar}`" if metavar else f"`{o}`" for o in action.option_strings)


def _details(action: argparse.Action) -> str:
    notes = []
    if action.choices is not None and not isinstance(action.choices, dict):
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.required and action.option_strings:
        notes.append("required")
    if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
        notes.append("repeatable")
    default = action.default
    if (action.nargs != 0 and default not in (None, "", [], argparse.SUPPRESS) and action.option_strings
            and "default" not in (action.help or "")):
        notes.append(f"default: `{default}`")
    return "; ".join(notes)


def _table(actions: list[argparse.Action]) -> str:
    rows = ["| argument or option | meaning |", "|---|---|"]
    for a in actions:
        extra = _details(a)
        text = _cell(a.help or "") + (f" ({extra})" if extra else "")
        rows.append(f"| {_name(a)} | {text} |")
    return "\n".join(rows) + "\n"


def _key(action: argparse.Action) -> tuple[str, ...]:
    return tuple(action.option_strings) or (action.dest,)


def _groups(parser: argparse.ArgumentParser) -> str:
    """Mutually exclusive groups, said in words."""
    lines = []
    for group in parser._mutually_exclusive_groups:
        names = " or ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
        lines.append(f"Give {'exactly one' if group.required else 'at most one'} of {names}.\n")
    return "\n".join(lines)


def render(parser: argparse.ArgumentParser) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands: dict[str, argparse.ArgumentParser] = dict(sub.choices)
    helps = {c.dest: c.help for c in sub._choices_actions}
    # Options that every command takes are listed once.
    per_command = {name: [a for a in p._actions if not isinstance(a, argparse._HelpAction)]
                   for name, p in commands.items()}
    shared = set.intersection(*(set(map(_key, actions)) for actions in per_command.values()))
    first = next(iter(per_command.values()))
    out = [INTRO, "## Commands\n", "| command | does |", "|---|---|"]
    out += [f"| [`{name}`](#{name}) | {_cell(helps.get(name) or '')} |" for name in commands]
    out.append("")
    out += ["## Options every command takes\n", _table([a for a in first if _key(a) in shared])]
    django_options = [a for a in parser._actions
                      if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction))
                      and _key(a) not in shared]
    out += ["Django's own options, given before the command (`manage.py tablemigrate --traceback run`):\n",
            _table(django_options)]
    for name, p in commands.items():
        out.append(f"## {name}\n")
        out.append(_cell(p.description or helps.get(name) or "") + "\n")
        usage = " ".join(p.format_usage().split())
        out.append(f"```text\n{usage.removeprefix('usage: ')}\n```\n")
        own = [a for a in per_command[name] if _key(a) not in shared]
        if own:
            out.append(_table(own))
        groups = _groups(p)
        if groups:
            out.append(groups)
    out += ["## Exit codes\n", "As `--help` prints them (explained with every case: [Exit codes](exit-codes.md)):\n",
            f"```text\n{(parser.epilog or '').strip()}\n```\n"]
    return "\n".join(out)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render(tablemigrate_parser())))
    return files


if __name__ == "__main__":
    print(render(tablemigrate_parser()))

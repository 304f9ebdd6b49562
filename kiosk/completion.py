"""Shell completion for face-kiosk-admin, read from its argparse parser (so it never falls behind).

``bash_script(parser)`` is a bash script that completes commands, their actions, options, the
choices of an option that has them, folders after a DIR option and files after a FILE one:

    source <(face-kiosk-admin completion bash)
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

# What an option's value is, for bash: a folder, a file, one of its choices, or free text.
DIR, FILE, FREE = "dir", "file", "free"
ROOT = "."  # the program itself, before any command (bash has no empty array keys)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _value_kind(action: argparse.Action) -> str:
    if action.choices is not None:
        return "choices:" + " ".join(str(choice) for choice in action.choices)
    metavar = str(action.metavar or "")
    if metavar == "DIR":
        return DIR
    if action.type is Path or "FILE" in metavar:
        return FILE
    return FREE


def _walk(parser: argparse.ArgumentParser, path: str, commands: dict, options: dict, values: dict) -> None:
    subcommands = _subcommands(parser)
    # Words offered where no option is being typed: the actions, or a positional's choices.
    words = set(subcommands)
    for action in parser._actions:
        if not action.option_strings and action.choices is not None and action.dest != argparse.SUPPRESS \
                and not isinstance(action, argparse._SubParsersAction):
            words.update(str(choice) for choice in action.choices)
    commands[path] = sorted(words)
    flags = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        flags.extend(action.option_strings)
        if action.nargs != 0:  # the option takes a value
            for flag in action.option_strings:
                values.setdefault(flag, _value_kind(action))
    options[path] = sorted(flags)
    for name, sub in subcommands.items():
        _walk(sub, f"{path} {name}", commands, options, values)


def _array(name: str, table: dict[str, object]) -> str:
    rows = "\n".join(f"    [{shlex.quote(key)}]={shlex.quote(value if isinstance(value, str) else ' '.join(value))}"
                     for key, value in table.items())
    return f"declare -gA {name}=(\n{rows}\n)"


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for `parser`'s program (bash 4 or later)."""
    commands: dict[str, list[str]] = {}
    options: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    _walk(parser, ROOT, commands, options, values)
    prog = parser.prog
    ident = "_" + re.sub(r"\W", "_", prog)
    return f"""# bash completion for {prog}: source <({prog} completion bash)
{_array(ident + "_commands", commands)}
{_array(ident + "_options", options)}
{_array(ident + "_values", values)}

{ident}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" path="{ROOT}" word i
    # The command and action typed so far (options and their values are skipped).
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ " ${{{ident}_commands[$path]}} " == *" $word "* ]]; then
            path="$path $word"
        fi
    done
    local kind="${{{ident}_values[$prev]}}"
    case "$kind" in
        dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        choices:*) COMPREPLY=($(compgen -W "${{kind#choices:}}" -- "$cur")); return ;;
        free) COMPREPLY=(); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${{{ident}_options[$path]}}" -- "$cur"))
    elif [[ -n "${{{ident}_commands[$path]}}" ]]; then
        COMPREPLY=($(compgen -W "${{{ident}_commands[$path]}}" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))  # a name or a photo
    fi
}}
complete -o filenames -F {ident} {prog}
"""

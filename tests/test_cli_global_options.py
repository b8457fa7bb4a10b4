"""The global options (--out, --station, --seed, --image-shape, --realtime, --sim) work before and after
every command, and a value given before the command is not reset by the command's parser."""

import argparse
from pathlib import Path

import pytest

from instrument.cli import _sub_parsers, build_parser, main

# one command line per command, with what each needs besides the global options
COMMANDS = [
    ["odmr"],
    ["lockin"],
    ["pulsed", "rabi"],
    ["spad", "odmr"],
    ["coil-scan", "--coils", "2"],
    ["analyse", "1"],
    ["gui"],
    ["schedule", "list"],
    ["reconstruct", "seed000"],
]
GLOBALS = ["--sim", "--out", "D", "--station", "s.yaml", "--seed", "7", "--image-shape", "16x24",
           "--realtime"]


def _check(args: argparse.Namespace) -> None:
    assert args.sim is True and args.realtime is True
    assert args.out == Path("D") and args.station == "s.yaml" and args.image_shape == (16, 24)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_global_options_before_and_after_every_command(command):
    parser = build_parser()
    before = parser.parse_args([*GLOBALS, *command])
    after = parser.parse_args([*command, *GLOBALS])
    _check(before)
    _check(after)
    assert before.command == after.command == command[0]
    assert before.seed == after.seed == 7


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_value_before_the_command_is_kept(command):
    args = build_parser().parse_args(["--out", "D", "--seed", "3", "--sim", *command])
    assert args.out == Path("D") and args.seed == 3 and args.sim is True
    args = build_parser().parse_args(command)
    assert args.out is None and args.sim is False and args.station is None


def test_every_command_parser_takes_every_global_option():
    for parser in _sub_parsers(build_parser()):
        for flag in ("--out", "--station", "--seed", "--image-shape", "--realtime", "--sim"):
            assert flag in parser._option_string_actions, (parser.prog, flag)


def test_reconstruct_seed_after_the_command_stays_the_network_seed():
    dip = ["dip", "b.npy", "m.npy", "--pixel-m", "1e-6", "--standoff-m", "1e-6", "--thickness-m", "1e-8"]
    args = build_parser().parse_args(["--seed", "2", "reconstruct", *dip, "--seed", "9", "--out", "D"])
    assert args.out == Path("D")
    assert args.seed == 2 and args.train_seed == 9


def test_bad_global_option_after_the_command_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["lockin", "--sim", "--image-shape", "big", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "ROWSxCOLS" in capsys.readouterr().err


def test_lockin_with_out_after_the_command_writes_there(tmp_path, capsys):
    """The user-facing case of the issue: ``acquire --sim lockin --out D`` stored nothing in D."""
    out = tmp_path / "runs"
    # a capture too short to run is refused before anything is written, after the options were accepted
    assert main(["--sim", "lockin", "--out", str(out), "--image-shape", "16x16", "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" not in err and "--seconds" in err

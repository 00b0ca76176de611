"""The README walk (tests/readme_walk.py): how it reads the examples and when it reports a difference."""

from __future__ import annotations

from pathlib import Path

from tests.readme_walk import Step, Walk, examples, main

SERIAL_A = "ED86D0BE6044AC95836AE48A2D3A39A1"
SERIAL_B = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"


def readme(*blocks: str) -> str:
    body = "\n".join(f"```console\n{block}\n```\n" for block in blocks)
    outside = "```console\n$ not walked\n```\n"
    return f"# Kinko\n\n{outside}\n## An officer's day\n\n{body}\n## Deployment\n\n{outside}"


def test_examples_are_read_from_the_officers_day_only() -> None:
    blocks = examples(readme("$ one \\\n    --two\nout 1\n...\n# useradd x\n$ three\nkinko: error: no"))
    assert len(blocks) == 1
    one, root, three = blocks[0]
    assert (one.command, one.expected, one.as_root) == ("one --two", ["out 1", "..."], False)
    assert (root.command, root.as_root) == ("useradd x", True)
    assert three.expected_rc == "1" and one.expected_rc == "0"
    assert Step(1, "x", False, ["kinko: error: No such option; see kinko x --help"]).expected_rc == "2"
    assert Step(1, "x", False, ["error 23 at 0 depth lookup: certificate revoked"]).expected_rc == "non-zero"
    assert Step(1, "x", False, ["kinko: エラー: RSA 1024 ビットの鍵は受け付けできません"]).expected_rc == "1"


def test_values_are_learnt_and_must_stay_the_same(tmp_path: Path) -> None:
    walk = Walk(tmp_path)
    learnt = walk.match(
        [f"serial  {SERIAL_A}", "...", "at      2026-11-25T10:03:16Z"],
        [
            f"serial      {SERIAL_B}",
            "anything",
            "else",
            "at  2027-01-01T00:00:00Z",
        ],
    )
    assert learnt == {SERIAL_A: SERIAL_B}
    walk.learn(Step(1, "x", False), learnt)
    # Shown again: it must be this run's value, not just any serial.
    assert walk.match([f"revoked {SERIAL_A}"], [f"revoked {SERIAL_B}"]) == {}
    assert walk.match([f"revoked {SERIAL_A}"], [f"revoked {SERIAL_A}"]) is None
    assert walk.match(["ledger OK: 26 events"], ["ledger OK: 25 events"]) is None
    assert walk.match(["one line"], ["one line", "and another"]) is None
    # One README value cannot stand for two of this run's.
    assert (
        walk.match(
            ["a 1111111111111111111111111111111A b 1111111111111111111111111111111A"], [f"a {SERIAL_A} b {SERIAL_B}"]
        )
        is None
    )


def test_commands_get_this_runs_values_in_the_form_typed(tmp_path: Path) -> None:
    walk = Walk(tmp_path)
    walk.known[SERIAL_A] = SERIAL_B
    step = Step(7, "kinko cert show ed:86:d0:be:60:44:ac:95:83:6a:e4:8a:2d:3a:39:a1 && kinko revoke " + SERIAL_A, False)
    assert walk.substitute(step) == (
        "kinko cert show 0a:1b:2c:3d:4e:5f:60:71:82:93:a4:b5:c6:d7:e8:f9 && kinko revoke " + SERIAL_B
    )
    unknown = Step(9, "kinko hold 5C1E0B7A2D9F4E3186A7C0D2B4E6F810", False)
    assert walk.substitute(unknown) is None
    assert walk.differences == [
        "README.md:9: `kinko hold 5C1E0B7A2D9F4E3186A7C0D2B4E6F810`: "
        "names 5C1E0B7A2D9F4E3186A7C0D2B4E6F810, which no output before it shows"
    ]


def test_a_walk_reports_wrong_output_and_wrong_exit_codes(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.md"
    made = f"$ printf 'serial %032X\\n' 48879\nserial {SERIAL_A}"
    good.write_text(readme(f"{made}\n$ echo again {SERIAL_A}\nagain {SERIAL_A}"))
    assert main(["--readme", str(good)]) == 0
    assert "2 commands in 1 examples ran as the README shows" in capsys.readouterr().out
    # The second command got this run's serial: the README's would have failed the match.
    wrong = tmp_path / "wrong.md"
    wrong.write_text(readme(f"{made}\n$ echo {SERIAL_A}\n{SERIAL_B}"))
    assert main(["--readme", str(wrong)]) == 1
    assert f"the README shows {SERIAL_B} here and {SERIAL_A} before; this run made one value" in capsys.readouterr().err

    bad = tmp_path / "bad.md"
    bad.write_text(readme("$ echo one\ntwo\n$ false\n$ echo kinko: error: x; exit 1\nkinko: error: y"))
    assert main(["--readme", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "`echo one`: the output differs" in err
    assert "`false`: exit code 1, the README implies 0" in err
    assert "`echo kinko: error: x; exit 1`: the output differs" in err
    assert "3 difference(s) in 3 commands" in err


def test_a_value_learnt_in_another_form_is_still_one_value(tmp_path: Path) -> None:
    walk = Walk(tmp_path)
    walk.learn(Step(1, "x", False), {SERIAL_A: SERIAL_B})
    colons = ":".join(SERIAL_B[i : i + 2] for i in range(0, 32, 2)).lower()
    walk.learn(Step(2, "y", False), {"1111111111111111111111111111111A": colons})
    assert walk.differences == [
        f"README.md:2: `y`: the README shows 1111111111111111111111111111111A here and {SERIAL_A} before; "
        "this run made one value"
    ]


def test_a_server_example_on_a_port_already_in_use_is_a_difference(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        walk = Walk(tmp_path)
        servers: list = []
        walk.run(Step(3, f"kinko --home ./kinko api serve --port {port}", False), servers)
    assert servers == []  # nothing was started: the one listening is not the example's
    assert walk.differences == [
        f"README.md:3: `kinko --home ./kinko api serve --port {port}`: "
        f"port {port} is in use before the example starts its server"
    ]


def test_a_server_that_exits_after_it_listened_is_a_difference(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    walk = Walk(tmp_path)
    servers: list = []
    # Listens, says so, then dies at once (python is on the walk's PATH: the clone's venv).
    script = (
        "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',int(sys.argv[2]))); s.listen();"
        " print('up', flush=True); time.sleep(0.3)"
    )
    walk.run(Step(4, f'python -c "{script}" --port {port} # try-locally.sh', False, ["up"]), servers)
    assert any("exited (0) just after it began to listen" in d for d in walk.differences), walk.differences


def test_a_readme_without_the_officers_day_is_one_line(tmp_path: Path) -> None:
    import pytest

    bare = tmp_path / "bare.md"
    bare.write_text("# Kinko\n\nnothing here\n")
    with pytest.raises(SystemExit, match=r"the README has no section .## An officer's day."):
        main(["--readme", str(bare)])

"""What a collector says is untrusted text: neutralized on the terminal, exact in JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

from bundlekit.otlp.signals import Signal
from tests.replay.otlpdata import Bundle
from tests.replay.receivers import Reply, http_receiver

Run = Callable[..., tuple[int, str, str]]
#: Clears the screen, sets the window title, and tries rich markup.
HOSTILE = "no\x1b[2J\x1b]0;owned\x07 [bold red]OK[/bold red]\u202e"


def _replay(bundle: Bundle, run_cli: Run, port: int, *extra: str) -> tuple[int, str, str]:
    return run_cli(
        "replay",
        bundle.path,
        "--protocol",
        "http",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--key",
        bundle.key.public_path,
        "--signal",
        "traces",
        "--concurrency",
        "1",
        "--retry-initial",
        "0.01",
        *extra,
    )


def test_collector_refusal_is_neutralized_in_text_and_exact_in_json(
    bundle: Bundle, run_cli: Run
) -> None:
    with http_receiver() as (port, receiver):
        receiver.script = [Reply(http_status=400, message=HOSTILE)]
        code, _, err = _replay(bundle, run_cli, port)
        receiver.script = [Reply(http_status=400, message=HOSTILE)]
        json_code, out, _ = _replay(bundle, run_cli, port, "--json")
    assert code == json_code == 6
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "no\\x1b[2J\\x1b]0;owned\\x07 [bold red]OK[/bold red]\\u202e" in err
    report = json.loads(out)
    assert report["error"].endswith(f"HTTP 400 Bad Request: {HOSTILE}")


def test_collector_words_in_retries_and_partial_success_warnings_are_neutralized(
    bundle: Bundle, run_cli: Run
) -> None:
    with http_receiver() as (port, receiver):
        receiver.script = [
            Reply(http_status=503, message=HOSTILE),
            Reply(rejected=1, message=HOSTILE),
        ]
        code, _, err = _replay(bundle, run_cli, port)
        assert receiver.accepted[Signal.TRACES]
    assert code == 0, err
    assert (
        "retrying traces" in err and "WARNING: the collector accepted traces only partially" in err
    )
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert err.count("no\\x1b[2J\\x1b]0;owned\\x07 [bold red]OK[/bold red]\\u202e") == 2

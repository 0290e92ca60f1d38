"""Command definitions. Each command parses options, calls the library, renders."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bundlekit._version import __version__
from bundlekit.cli.errors import BundlekitGroup

if TYPE_CHECKING:
    from bundlekit.verify import VerifyOptions

app = typer.Typer(
    cls=BundlekitGroup,
    name="bundlekit",
    help="Offline forensic bundles of OpenTelemetry data: pack, sign, verify, replay.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class KeyTypeChoice(StrEnum):
    ed25519 = "ed25519"
    ecdsa_p256 = "ecdsa-p256"
    rsa_pss_3072 = "rsa-pss-3072"


class ProfileChoice(StrEnum):
    default = "default"
    forensic = "forensic"
    airgap = "airgap"


def _version(value: bool) -> None:
    if value:
        print(f"bundlekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """bundlekit: carry telemetry you can trust."""


TrustDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.11
    typer.Option(
        "--trust", help="Directory of trusted PEM public keys (*.pub, *.pem).", readable=False
    ),
]
TrustKeys = Annotated[
    Optional[list[Path]],  # noqa: UP045
    typer.Option("--key", help="A trusted public key file (repeatable).", readable=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON report.")]


def _passphrase(path: Path) -> bytes | None:
    """$BUNDLEKIT_PASSPHRASE, else a prompt on a terminal, else None."""
    from bundlekit.keys import PASSPHRASE_ENV, is_encrypted

    if os.environ.get(PASSPHRASE_ENV) or not is_encrypted(path):
        return None
    if not sys.stdin.isatty():
        return None  # load_private_key explains how to pass one
    return str(typer.prompt(f"Passphrase for {path}", hide_input=True)).encode("utf-8")


def _load_signers(paths: list[Path]) -> list[object]:
    from bundlekit.keys import load_private_key

    return [load_private_key(p, _passphrase(p)) for p in paths]


@app.command()
def keygen(
    out: Annotated[
        Path, typer.Option("--out", help="Path prefix: writes PREFIX.key and PREFIX.pub.")
    ],
    key_type: Annotated[KeyTypeChoice, typer.Option("--type", help="Key algorithm.")] = (
        KeyTypeChoice.ed25519
    ),
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Write the private key unencrypted.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Generate a signing key pair (private key encrypted with a passphrase)."""
    from bundlekit.cli import render
    from bundlekit.errors import UsageError
    from bundlekit.keys import PASSPHRASE_ENV, KeyType, generate_key

    passphrase: bytes | None = None
    if not no_passphrase:
        env = os.environ.get(PASSPHRASE_ENV)
        if env:
            passphrase = env.encode("utf-8")
        elif sys.stdin.isatty():
            passphrase = typer.prompt(
                "Passphrase for the new key", hide_input=True, confirmation_prompt=True
            ).encode("utf-8")
        else:
            raise UsageError(
                "no passphrase for the new private key",
                f"set {PASSPHRASE_ENV}, run on a terminal, or pass --no-passphrase",
            )
    generated = generate_key(out, KeyType(key_type.value), passphrase)
    render.keygen(generated, as_json)


@app.command()
def pack(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Bundle to create (a directory, or with --archive a file)."
        ),
    ],
    inputs: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(help="OTLP protobuf files; the signal is detected.", readable=False),
    ] = None,
    traces: Annotated[
        list[Path] | None, typer.Option(help="A traces file (repeatable).", readable=False)
    ] = None,
    metrics: Annotated[
        list[Path] | None, typer.Option(help="A metrics file (repeatable).", readable=False)
    ] = None,
    logs: Annotated[
        Optional[list[Path]], typer.Option(help="A logs file (repeatable).", readable=False)  # noqa: UP045
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="Collector config YAML.", readable=False)  # noqa: UP045
    ] = None,
    dashboards: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Directory of Grafana dashboard JSON files.", readable=False),
    ] = None,
    attach: Annotated[
        Optional[list[Path]], typer.Option(help="Extra evidence file (repeatable).", readable=False)  # noqa: UP045
    ] = None,
    key: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--key", help="Sign with this private key (repeatable).", readable=False),
    ] = None,
    profile: Annotated[ProfileChoice, typer.Option(help="Bundle profile.")] = ProfileChoice.default,
    operator: Annotated[Optional[str], typer.Option(help="Who made the bundle.")] = None,  # noqa: UP045
    case_id: Annotated[Optional[str], typer.Option(help="Case or incident id.")] = None,  # noqa: UP045
    reason: Annotated[Optional[str], typer.Option(help="Why the bundle was made.")] = None,  # noqa: UP045
    retention: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Keep until: days (90d) or a date (2027-06-30). Default: by profile."),
    ] = None,
    level: Annotated[int, typer.Option(help="zstd compression level.", min=1, max=19)] = 3,
    segment_mib: Annotated[
        int,
        typer.Option("--segment-mib", help="Start a new segment at this many MiB.", min=1, max=64),
    ] = 16,
    archive: Annotated[
        bool,
        typer.Option("--archive", help="Write a single-file .bundle.tar instead of a directory."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pack OTLP data, collector config and dashboards into a bundle."""
    from bundlekit.cli import render
    from bundlekit.format.manifest import Custody
    from bundlekit.otlp.signals import Signal
    from bundlekit.pack import PackInput, PackOptions, check_custody, pack_bundle
    from bundlekit.textsafe import neutralize

    custody = Custody(operator, case_id, reason)
    options = PackOptions(
        config=config,
        dashboards=dashboards,
        attachments=tuple(attach or ()),
        profile=profile.value,
        custody=custody,
        retention=retention,
        compression_level=level,
        segment_target=segment_mib * 1024 * 1024,
        archive=archive,
    )
    check_custody(custody, options.limits)  # at the door: before keys are loaded or a passphrase
    specs = [PackInput(p) for p in inputs or []]
    for signal, paths in ((Signal.TRACES, traces), (Signal.METRICS, metrics), (Signal.LOGS, logs)):
        specs.extend(PackInput(p, signal) for p in paths or [])
    signers = _load_signers(key or [])
    with render.progress("packing", enabled=not as_json) as advance:
        result = pack_bundle(specs, out, options, signers, progress=advance)  # type: ignore[arg-type]
    for stale in result.removed_staging:
        # stderr, so --json output stays one document
        render.say(
            f"removed {neutralize(str(stale))}: staging left by a pack that was killed",
            stderr=True,
        )
    render.packed(result, as_json)


@app.command()
def sign(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .bundle.tar.")],
    key: Annotated[
        list[Path],
        typer.Option("--key", help="Private key to co-sign with (repeatable).", readable=False),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Add a co-signature to a bundle; manifest.json is never changed."""
    from bundlekit.cli import render
    from bundlekit.sign import sign_bundle

    envelope = None
    for signer in _load_signers(key):
        envelope = sign_bundle(bundle, signer)  # type: ignore[arg-type]
    assert envelope is not None
    render.signed(bundle, envelope, as_json)


BundleArg = Annotated[
    Path, typer.Argument(help="Bundle directory, .bundle.tar, or - to read an archive from stdin.")
]
Threshold = Annotated[int, typer.Option(help="Distinct trusted signers required.", min=1)]
NoVerify = Annotated[
    bool,
    typer.Option("--no-verify", help="Skip signature checks (files are still checked)."),
]


@app.command()
def verify(
    bundle: BundleArg,
    trust: TrustDir = None,
    key: TrustKeys = None,
    threshold: Threshold = 1,
    deep: Annotated[
        bool,
        typer.Option("--deep", help="Also decode every record and check the manifest's counts."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify a bundle offline: signatures, manifest, every file."""
    from bundlekit.cli import render
    from bundlekit.verify import VerifyOptions, check_bundle

    with render.progress("verifying", enabled=not as_json) as advance:
        report = check_bundle(
            bundle,
            VerifyOptions(
                trust_dir=trust,
                keys=tuple(key or ()),
                threshold=threshold,
                deep=deep,
                progress=advance,
            ),
        )
    render.verification(report, as_json)
    raise typer.Exit(int(report.exit_code))


@app.command()
def inspect(
    bundle: BundleArg,
    trust: TrustDir = None,
    key: TrustKeys = None,
    as_json: JsonFlag = False,
) -> None:
    """Show what a bundle holds: signals, counts, time window, services, files, signers."""
    from bundlekit.cli import render
    from bundlekit.inspect import inspect_bundle
    from bundlekit.verify import TrustStore

    store = TrustStore.load(trust, tuple(key or ())) if (trust or key) else None
    render.inspection(inspect_bundle(bundle, store), as_json)


def _convert_options(
    trust: Path | None, key: list[Path] | None, threshold: int, no_verify: bool
) -> VerifyOptions:
    from bundlekit.errors import UsageError
    from bundlekit.verify import VerifyOptions

    if not no_verify and not (trust or key):
        raise UsageError(
            "no trusted keys given",
            "pass --trust DIR or --key FILE (as for verify), or --no-verify to check files only",
        )
    return VerifyOptions(
        trust_dir=trust, keys=tuple(key or ()), threshold=threshold, require_trust=not no_verify
    )


@app.command()
def archive(
    bundle: BundleArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The .bundle.tar to create.")],
    trust: TrustDir = None,
    key: TrustKeys = None,
    threshold: Threshold = 1,
    no_verify: NoVerify = False,
    as_json: JsonFlag = False,
) -> None:
    """Write a bundle as one .bundle.tar, verifying every file on the way."""
    from bundlekit.cli import render
    from bundlekit.convert import archive_bundle

    report = archive_bundle(bundle, out, _convert_options(trust, key, threshold, no_verify))
    render.converted(report, out, "archived", as_json)


@app.command()
def unpack(
    bundle: BundleArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The directory to create.")],
    trust: TrustDir = None,
    key: TrustKeys = None,
    threshold: Threshold = 1,
    no_verify: NoVerify = False,
    as_json: JsonFlag = False,
) -> None:
    """Extract a .bundle.tar into a new directory, only if it verifies."""
    from bundlekit.cli import render
    from bundlekit.convert import unpack_bundle

    report = unpack_bundle(bundle, out, _convert_options(trust, key, threshold, no_verify))
    render.converted(report, out, "unpacked", as_json)


def _register_replay() -> None:
    from bundlekit.cli import replay_cmd

    replay_cmd.register(app)


_register_replay()

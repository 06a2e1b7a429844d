"""The ``tftt`` command line (Typer). Builds the settings once and passes them down."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tftt.observability import quiet_libraries
from tftt.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Teaching File Transfer Tool")


def _settings() -> Settings:
    quiet_libraries()
    return Settings()


@app.command()
def deidentify(
    src: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder of input files")],
    dst: Annotated[Path, typer.Argument(help="Folder for verified, de-identified files")],
    quarantine_dir: Annotated[Path, typer.Option("--quarantine", help="Folder for quarantined inputs")],
    profile: Annotated[str | None, typer.Option(help="Second-pass profile name")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (default: deid.workers)")] = None,
) -> None:
    """First pass, automatic pixel cleaning, second pass and verification of every file in SRC."""
    from tftt.errors import ConfigurationError
    from tftt.headless import build_pipeline, run_headless
    from tftt.pixels.stage import make_pixel_stage
    from tftt.store.keys import load_or_create_key

    settings = _settings()
    if profile is not None:
        settings = settings.model_copy(
            update={"deid": settings.deid.model_copy(update={"second_pass_profile": profile})}
        )
    key = load_or_create_key(settings)
    pipeline = build_pipeline(settings, key, make_pixel_stage(settings))
    processes = workers or settings.deid.workers
    try:
        summary = run_headless(src, dst, quarantine_dir, pipeline, workers=processes)
    except ConfigurationError as exc:
        typer.echo(f"FAILED ({exc.code}): {exc.message}")
        raise typer.Exit(2) from None
    typer.echo(f"processes:    {processes}")
    typer.echo(f"inputs:       {summary.inputs}")
    typer.echo(f"written:      {summary.written}")
    if summary.already_present:
        typer.echo(f"already there: {summary.already_present}")
    typer.echo(f"pixel-cleaned: {summary.pixels_cleaned}")
    typer.echo(f"quarantined:  {summary.quarantined_total}")
    for code, count in sorted(summary.quarantined.items()):
        typer.echo(f"  {code}: {count}")
    if summary.unlisted_folders:
        typer.echo(f"folders that could not be listed: {summary.unlisted_folders} (their files are not "
                   "counted; see the quarantine records)")  # fmt: skip
    typer.echo(f"accounted:    {'yes' if summary.balanced else 'NO'}")
    if not summary.balanced:
        sys.exit(1)


@app.command()
def verify(
    original: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    deidentified: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    profile: Annotated[str | None, typer.Option(help="Profile the output claims to meet")] = None,
) -> None:
    """Check one de-identified file against its original; exit 1 with findings (no values)."""
    from tftt.deid.pipeline import parse
    from tftt.deid.rules import load_keep_list, load_profile, load_safe_private_tags, load_table
    from tftt.deid.verify import harvest_identifiers, verify_output
    from tftt.errors import TfttError

    settings = _settings()
    rules_dir = settings.deid.rules_dir
    kwargs = {"rules_dir": rules_dir} if rules_dir else {}
    prof = load_profile(profile or settings.deid.second_pass_profile, **kwargs)
    table = load_table(prof.table, **kwargs)
    keep = load_keep_list(prof.keep_list, **kwargs)
    safe = load_safe_private_tags(**kwargs) if settings.deid.retain_safe_private else None
    try:
        ids = harvest_identifiers(parse(original.read_bytes()), prof, table)
        report = verify_output(ids, deidentified.read_bytes(), deidentified.name, prof, table, keep,
                               safe_private=safe)
    except TfttError as exc:
        typer.echo(f"FAILED ({exc.code}): {exc.message}")
        for finding in getattr(exc, "findings", ()):
            typer.echo(f"  - {finding}")
        raise typer.Exit(1) from None
    typer.echo(f"verified: {report}")


@app.command()
def serve(
    web_only: Annotated[bool, typer.Option(
        "--web-only", help="Several machines: only the webhook and review page; workers run the flows")] = False,
) -> None:
    """Serve the process-case, nightly and take-down deployments, the PACS webhook and the review page."""
    from tftt.service import serve as run_service

    run_service(_settings(), deployments=not web_only)


@app.command()
def demo(
    review: Annotated[bool, typer.Option("--review", help="Wait for a reviewer instead of approving")] = False,
) -> None:
    """The main job on embedded defaults: local Prefect server, tftt serve, a synthetic case, published."""
    from tftt.demo import run_demo

    raise typer.Exit(run_demo(_settings(), review=review, say=typer.echo))


@app.command()
def takedown(
    case_id: Annotated[str, typer.Argument(help="The case id (c-...)")],
    reason: Annotated[str, typer.Option(help="identifier-found, author-request, content-error or other")],
    actor: Annotated[str | None, typer.Option(help="Who asks (recorded in the audit table)")] = None,
) -> None:
    """Remove a published case from every target; it can be published again only after a new review."""
    from tftt.case.runtime import runtime
    from tftt.case.takedown import TakeDownReason, take_down_case
    from tftt.errors import TfttError

    try:
        summary = take_down_case(runtime(_settings()), case_id, TakeDownReason(reason), actor=actor)
    except ValueError:
        raise typer.BadParameter(f"unknown reason; use one of {[r.value for r in TakeDownReason]}") from None
    except TfttError as exc:
        typer.echo(f"FAILED ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None
    typer.echo(f"taken down from: {', '.join(summary.taken_down) or 'nothing was published'}")


@app.command("review-again")
def review_again(case_id: Annotated[str, typer.Argument(help="The case id (c-...)")]) -> None:
    """Start a new review round (a corrected case, or one taken down) in a new flow run."""
    from tftt.case.review_rounds import reopen_for_review
    from tftt.case.runtime import runtime
    from tftt.web.runs import start_case_run

    run_id = reopen_for_review(runtime(_settings()), case_id, start_case_run)
    typer.echo(f"case {case_id}: new review round in flow run {run_id}")


@app.command("reviewer-hash")
def reviewer_hash() -> None:
    """Print the argon2 hash of a reviewer password, for TFTT_WEB__REVIEWERS."""
    from tftt.web.review_accounts import hash_password

    typer.echo(hash_password(typer.prompt("Password", hide_input=True, confirmation_prompt=True)))


def _mount_synth() -> None:
    from tftt.synth.cli import synth_command

    app.command("synth", help="Generate synthetic studies with planted canary identifiers")(synth_command)


_mount_synth()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""``tftt synth OUT``: write a synthetic test corpus (the lead mounts :data:`app` or
:func:`synth_command` on the main CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tftt.synth.corpus import MANIFEST_NAME, write_corpus

app = typer.Typer(help="Synthetic DICOM corpora with planted canary identifiers.")


def synth_command(
    out: Annotated[Path, typer.Argument(help="Folder to write the corpus into.")],
    seed: Annotated[int, typer.Option(min=0, help="Seed; same seed, same bytes.")] = 0,
    patients: Annotated[int, typer.Option(min=1, help="Number of synthetic patients.")] = 2,
    size_mb: Annotated[
        float | None,
        typer.Option(min=0, help="Grow the corpus with large CT/US series to about this size."),
    ] = None,
    scale: Annotated[
        float, typer.Option(min=0.01, help="Scale of slice/frame counts and matrices.")
    ] = 1.0,
    hostile: Annotated[bool, typer.Option(help="Add hostile (malformed) files.")] = True,
) -> None:
    """Write a synthetic corpus and its manifest.json to OUT."""
    target = None if size_mb is None else int(size_mb * 1_000_000)
    manifest = write_corpus(
        out, seed=seed, patients=patients, scale=scale, hostile=hostile, target_bytes=target
    )
    typer.echo(
        f"wrote {len(manifest.files)} files, {manifest.total_bytes} bytes; "
        f"manifest: {out / MANIFEST_NAME}"
    )


app.command("synth")(synth_command)

if __name__ == "__main__":  # pragma: no cover
    app()

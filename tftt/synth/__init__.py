"""Synthetic DICOM test data with planted "canary" identifiers, and hostile files.

:mod:`~tftt.synth.canaries` (identities and what must not survive), :mod:`~tftt.synth.studies`
(pure dataset builders), :mod:`~tftt.synth.transfer` (transfer syntaxes, encoding),
:mod:`~tftt.synth.hostile` (malformed inputs), :mod:`~tftt.synth.corpus` (writes a corpus and
its manifest), :mod:`~tftt.synth.cli` (``tftt synth OUT``).
"""

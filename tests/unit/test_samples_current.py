"""events/ holds what events/make_samples.py writes: a change to the models or to a builder that the
samples would show is not left out of them (README "Trying one function")."""

from __future__ import annotations

from pathlib import Path

from events import make_samples


def test_every_generated_sample_is_as_make_samples_writes_it(tmp_path: Path) -> None:
    make_samples.main(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert len(written) >= 14, written
    stale = [
        str(rel) for rel in written if (make_samples.ROOT / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert not stale, f"regenerate with `python events/make_samples.py` (README): {stale}"

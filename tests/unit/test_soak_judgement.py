"""chaos/soak.py's judgement of its series: the growth a least-squares line over the samples after the
warm-up predicts, against each kind's tolerance; the stand-ins' memory is shown but not judged.

Worked by hand: 11 samples a minute apart, the first (10 %, rounded to 1) dropped as warm-up; a series that
rises 10 MiB a sample then rises 10 × 9 = 90 MiB over the 9 minutes left, past the 48 MiB tolerance of a
small process; a flat one rises 0.
"""

from __future__ import annotations

from chaos.soak import Report, Sample, judge, verdict, write_samples


def samples(**series) -> list[Sample]:
    return [
        Sample(60.0 * i, {name: start + step * i for name, (start, step) in series.items()})
        for i in range(11)
    ]


def test_a_series_that_keeps_rising_is_not_bounded_and_a_flat_one_is():
    verdicts = {
        v.series: v
        for v in judge(samples(**{"rss MiB dossier": (100.0, 10.0), "fds dossier": (20.0, 0.0)}), 0.1)
    }
    rising, flat = verdicts["rss MiB dossier"], verdicts["fds dossier"]
    assert round(rising.growth, 6) == 90.0 and rising.tolerance == 48.0
    assert not rising.bounded and verdict(rising) == "NO"
    assert flat.growth == 0.0 and flat.bounded and verdict(flat) == "yes"
    assert not Report(1.0, verdicts=[rising, flat], drain_seconds=0.1).ok
    assert Report(1.0, verdicts=[flat], drain_seconds=0.1).ok


def test_a_stand_ins_memory_is_shown_but_not_judged():
    (portal,) = judge(samples(**{"rss MiB national_portal": (90.0, 15.0)}), 0.1)
    assert round(portal.growth, 6) == 135.0
    assert portal.bounded and verdict(portal).startswith("not judged")
    assert Report(1.0, verdicts=[portal], drain_seconds=0.1).ok


def test_every_sample_is_written(tmp_path):
    path = tmp_path / "samples.csv"
    write_samples(samples(**{"fds dossier": (20.0, 1.0)}), path)
    rows = path.read_text().splitlines()
    assert rows[0] == "seconds,fds dossier" and rows[1] == "0,20.0" and rows[-1] == "600,30.0"
    assert len(rows) == 12

"""Progress output: a line per scale in logs, a rate-limited bar on terminals."""

import io
import time

import itk_suits
from itk_suits import progress

from conftest import phantom

FAST = dict(grid_spacings=(12, 8, 6), iterations=(40, 40, 40), tolerance=0)


def test_registration_progress_in_a_log_is_one_line_per_scale(capsys):
    image = phantom((48, 48), seed=1)
    itk_suits.register(image, phantom((48, 48), seed=2), progress=True, **FAST)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith(f"SUITS scale {k + 1}/3") and "40 iterations" in line for k, line in enumerate(lines))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_on_a_terminal_redraws_at_most_a_few_times_per_second(monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    bar = progress.progress_bar(2000, "work")
    start = time.perf_counter()
    for _ in range(2000):
        bar.update(1)
        time.sleep(0.0002)
    bar.close()
    seconds = time.perf_counter() - start
    redraws = stream.getvalue().count("\r")
    assert redraws <= 4 * seconds + 3, (redraws, seconds)


def test_a_bar_in_a_log_writes_only_its_first_and_last_state(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    bar = progress.progress_bar(5000, "work")
    for _ in range(5000):
        bar.update(1)
    bar.close()
    states = [part for part in stream.getvalue().replace("\r", "\n").splitlines() if part.strip()]
    assert len(states) <= 2, states
    assert "5000/5000" in states[-1]

"""Exercises say "no answer yet" to a blank answer, ✅ to a right one and ❌ to a wrong one; false claims stop a lesson."""
import pytest

from msr_lib.exercises import ClaimError, check_choice, check_claim, check_close, show_solution


def test_choice_right_wrong_and_blank(capsys):
    check_choice(" Bass", "bass", explanation="the bass owns the lowest octave", hint="look below 120 Hz")
    right = capsys.readouterr().out
    assert right.startswith("✅ ' Bass' is right.") and "the bass owns the lowest octave" in right

    check_choice("drums", "bass", explanation="the bass owns the lowest octave", hint="look below 120 Hz")
    wrong = capsys.readouterr().out
    assert wrong.startswith("❌ 'drums' is not it.") and "the bass owns the lowest octave" in wrong

    check_choice(None, "bass", explanation="the bass owns the lowest octave", hint="look below 120 Hz")
    blank = capsys.readouterr().out
    assert "no answer yet — look below 120 Hz" in blank
    assert "✅" not in blank and "❌" not in blank and "owns" not in blank  # not a pass, and nothing given away


def test_close_right_wrong_and_blank(capsys):
    check_close(10.4, 10.0, 0.5, what="crest factor", unit=" dB", explanation="fast attack shaves peaks")
    right = capsys.readouterr().out
    assert right.startswith("✅ crest factor = 10.40 dB, target 10.00 dB ± 0.5 dB. fast attack shaves peaks")

    check_close(11.0, 10.0, 0.5, what="crest factor", unit=" dB", explanation="fast attack shaves peaks")
    wrong = capsys.readouterr().out
    assert wrong.startswith("❌ crest factor = 11.00 dB") and "1.00 dB too high." in wrong and "fast attack" in wrong

    check_close(9.0, 10.0, 0.5, what="crest factor")
    assert "1.00 too low." in capsys.readouterr().out

    check_close(None, 10.0, 0.5, what="crest factor", hint="try a 0.3 ms attack")
    blank = capsys.readouterr().out
    assert "no answer yet — try a 0.3 ms attack" in blank and "✅" not in blank and "❌" not in blank


def test_show_solution_prints_the_last_exercise(capsys):
    check_choice(None, "bass", hint="look low", solution="my_answer = 'bass'")
    check_close(None, 1.0, 0.1, what="x", solution="my_x = 1.0")
    capsys.readouterr()
    show_solution()
    assert capsys.readouterr().out.strip() == "my_x = 1.0"


def test_check_claim_prints_or_raises(capsys):
    check_claim(3 < 4, "compression lowered the crest factor by 1.0 dB")
    assert capsys.readouterr().out == "✅ compression lowered the crest factor by 1.0 dB\n"
    with pytest.raises(ClaimError, match="^❌ saturation added energy above 5 kHz$"):
        check_claim(False, "saturation added energy above 5 kHz")
    assert capsys.readouterr().out == ""

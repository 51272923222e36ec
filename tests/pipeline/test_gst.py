"""GStreamer names in launch strings: aliases run, the others get one line naming rxaudio's."""

from __future__ import annotations

import pytest

from rxaudio.frames import CountReceipt
from rxaudio.pipeline import registry
from rxaudio.pipeline.gst import GST_NAMES, alias, hint
from rxaudio.pipeline.launch import LaunchError, parse_launch


def test_audiotestsrc_and_fakesink_run_with_gstreamer_properties() -> None:
    p = parse_launch("audiotestsrc wave=white-noise num-buffers=3 samplesperbuffer=100 ! fakesink")
    assert p.run() == [CountReceipt(items=3, samples=300, sample_rate=16000)]
    assert p.source_label == "audiotestsrc" and p.ends == ("fakesink",)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("filesrc location=a.wav ! null", "file location=a.wav"),
        ("autoaudiosrc ! null", "mic"),
        ("pulsesrc ! null", "mic device="),
        ("alsasrc ! null", "mic device="),
        ("testsrc ! audioresample ! null", "resample rate=16000"),
        ("testsrc ! audioconvert ! null", "conversions a link needs are inserted"),
        ("testsrc ! volume ! null", "gain db="),
        ("testsrc ! wavenc ! filesink location=a.wav", "wav location=out.wav"),
        ("testsrc ! filesink location=a.wav", "wav location=out.wav"),
        ("filesrc location=a.wav ! decodebin ! null", "file location="),
        ("testsrc ! queue2 ! null", "queue"),
    ],
)
def test_a_gstreamer_name_gets_one_line_naming_the_rxaudio_element(text: str, names: str) -> None:
    with pytest.raises(LaunchError) as err:
        parse_launch(text)
    first = str(err.value).splitlines()[0]
    assert "GStreamer's name" in first and names in first
    assert err.value.pos == text.index(first.split("'")[1])  # the caret is under the name


def test_the_table_names_real_elements_and_no_rxaudio_name() -> None:
    real = set(registry.BUILTINS)
    for g in GST_NAMES:
        assert g.gst not in real, g.gst  # an rxaudio name is never shadowed
        for part in g.rxaudio.replace(",", " ").split():
            if part.isidentifier() and part not in ("none", "needed"):
                assert part in real, (g.gst, part)
    assert alias("audiotestsrc") == "testsrc" and alias("fakesink") == "null"
    assert alias("filesrc") is None and hint("testsrc") is None and hint("nosuch") is None

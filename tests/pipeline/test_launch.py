"""Launch strings: parse_launch equals its pipe() twin, tees, quoting, comments, every error
with its caret, negotiation at link time."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rxaudio.core.caps import Caps
from rxaudio.data import speech_sample
from rxaudio.errors import ConfigError
from rxaudio.frames import AudioFrame, FileReceipt, LevelFrame
from rxaudio.io.wav import partial_name
from rxaudio.pipeline import registry
from rxaudio.pipeline.caps import LinkError, link
from rxaudio.pipeline.launch import LaunchError, parse_launch

pytestmark = pytest.mark.timeout(120)


S = speech_sample()


def _bytes(p: Path | str) -> bytes:
    return Path(p).read_bytes()


def test_launch_equals_its_pipe_twin_byte_for_byte(tmp_path: Path) -> None:
    from rxaudio.operators import buffer_utterance, hysteresis, vad
    from rxaudio.sinks import to_jsonl
    from rxaudio.sources import from_file

    a, b = tmp_path / "launch.jsonl", tmp_path / "pipe.jsonl"
    p = parse_launch(
        f"file location={S} ! vad ! hysteresis threshold=0.6 ! "
        f"buffer_utterance pre_roll_ms=300 ! jsonl location={a}"
    )
    receipts = p.run()
    from_file(S).pipe(
        vad(), hysteresis(0.6), buffer_utterance(pre_roll_ms=300), to_jsonl(str(b))
    ).run()
    assert _bytes(a) == _bytes(b) and _bytes(a).count(b"\n") >= 3
    assert [r.path for r in receipts] == [str(a)]
    assert p.stats.items == {"jsonl": _bytes(a).count(b"\n")}
    assert p.stats.audio_seconds == pytest.approx(17.075, abs=1e-3)


def test_tee_branches_equal_their_twins_and_the_file_opens_once(tmp_path: Path) -> None:
    from rxaudio.operators import hysteresis, level, vad
    from rxaudio.sinks import to_jsonl, to_labels
    from rxaudio.sources import from_file

    lv, rttm = tmp_path / "l.jsonl", tmp_path / "x.rttm"
    p = parse_launch(
        f"file location={S} ! tee name=t  t. ! level ! jsonl location={lv}  "
        f"t. ! vad ! hysteresis ! labels location={rttm}"
    )
    opens = []
    src: Any = p.source
    real_open = src._open

    def counting_open() -> Any:
        opens.append(1)
        return real_open()

    src._open = counting_open
    p.run()
    assert len(opens) == 1
    twin = tmp_path / "twin"  # same file names: the RTTM's uri is the file's stem
    twin.mkdir()
    from_file(S).pipe(level(), to_jsonl(str(twin / "l.jsonl"))).run()
    from_file(S).pipe(vad(), hysteresis(), to_labels(str(twin / "x.rttm"))).run()
    assert _bytes(lv) == _bytes(twin / "l.jsonl")
    assert _bytes(rttm) == _bytes(twin / "x.rttm") and _bytes(rttm)
    assert set(p.stats.items) == {"jsonl", "labels"} and p.stats.items["jsonl"] == 267
    assert [b.start for b in p.branches] == ["file", "t", "t"]
    assert p.branches[0].tee == "t" and p.branches[1].sink is not None


def test_chain_may_continue_after_a_tee_and_branches_may_end_in_an_operator(
    tmp_path: Path,
) -> None:
    p = parse_launch(
        f"file location={S} block_size=4000 ! tee name=t ! level "
        f"! jsonl location={tmp_path}/a.jsonl  t. ! level"
    )
    out = []
    p.observable().subscribe(out.append)
    levels = [x for x in out if isinstance(x, LevelFrame)]
    receipts = [x for x in out if isinstance(x, FileReceipt)]
    assert len(levels) == 69 and len(receipts) == 1  # 273200 samples / 4000
    assert p.ends == ("jsonl", "level1") and p.stats.items == {"jsonl": 69, "level1": 69}
    # every subscription starts afresh
    again: list[Any] = []
    p.observable().subscribe(again.append)
    assert len(again) == len(out)


def test_named_elements_and_numbered_duplicates(tmp_path: Path) -> None:
    p = parse_launch(
        f"file location={S} ! tee name=split ! gain db=0 name=g ! jsonl location={tmp_path}/a.jsonl"
        f"  split.src_1 ! jsonl location={tmp_path}/b.jsonl"
    )
    assert p.ends == ("jsonl0", "jsonl1")
    assert [str(k).split(":")[0] for k in p.links] == [
        "file ! split",
        "split ! g",
        "g ! jsonl0",
        "split ! jsonl1",
    ]


def test_quotes_escapes_and_spaces_in_values(tmp_path: Path) -> None:
    d = tmp_path / "my dir"
    d.mkdir()
    src = d / "a b!#.wav"
    shutil.copy(S, src)
    escaped = re.sub(r"([ !])", r"\\\1", str(src))  # my\ dir/a\ b\!#.wav
    escaped_dir = str(d).replace(" ", "\\ ")
    texts = {
        "double": f'file location="{src}" ! jsonl location="{d}/say \\"hi\\".jsonl"',
        "single": f"file location='{src}' ! jsonl location='{d}/it\\'s.jsonl'",
        "backslash": f"file location={escaped} ! jsonl location={escaped_dir}/plain\\ name.jsonl",
    }
    for text in texts.values():
        p = parse_launch(text)
        (receipt,) = p.run()
        assert os.path.exists(receipt.path)
    assert {f.name for f in d.iterdir()} == {
        "a b!#.wav",
        'say "hi".jsonl',
        "it's.jsonl",
        "plain name.jsonl",
    }


def test_comments_newlines_and_dashes_in_property_names(tmp_path: Path) -> None:
    text = f"""
    # segment a talk
    file location={S}   # the bundled sample
      ! vad             # silero
      ! hysteresis threshold=0.6
      ! buffer_utterance pre-roll-ms=300
      ! jsonl location={tmp_path}/u.jsonl#not-a-comment
    """
    p = parse_launch(text)
    p.run()
    assert (tmp_path / "u.jsonl#not-a-comment").stat().st_size > 0


def _err(text: str, at: str) -> LaunchError:
    """Parse ``text``, expect a LaunchError whose caret is under the last occurrence of ``at``."""
    with pytest.raises(LaunchError) as info:
        parse_launch(text)
    e = info.value
    assert e.pos == text.rindex(at), (str(e), e.pos, text.rindex(at))
    lines = str(e).splitlines()
    caret = lines[-1]
    assert caret.strip() == "^" and caret.index("^") - 2 == e.column - 1
    if text:
        assert lines[-2][2:] == text.splitlines()[e.line - 1]
    assert isinstance(e, ConfigError)
    return e


def test_error_unknown_element_names_close_matches() -> None:
    e = _err(f"file location={S} ! vda ! level", "vda")
    assert "no element called 'vda'" in e.reason and "did you mean vad" in e.reason


def test_error_expected_link() -> None:
    e = _err(f"file location={S} level ! jsonl location=x.jsonl", "level")
    assert "expected `!` between file and level" in e.reason


def test_error_unknown_property_lists_the_elements_properties() -> None:
    e = _err(f"file location={S} ! hysteresis treshold=0.5 ! level", "treshold")
    assert "hysteresis has no property 'treshold'" in e.reason
    assert "did you mean threshold" in e.reason
    for p in registry.get("hysteresis").props:
        if p.type is not object:
            assert p.name in e.reason


def test_error_bad_value_says_the_allowed_range() -> None:
    e = _err(f"file location={S} ! vad ! hysteresis threshold=3 ! level", "3 ! level")
    allowed = registry.get("hysteresis").prop("threshold").describe()
    assert "threshold must be" in e.reason and allowed in e.reason
    e = _err(f"file location={S} ! resample rate=fast ! level", "fast")
    assert registry.get("resample").prop("rate").describe() in e.reason


@pytest.mark.parametrize(
    ("text", "at", "says"),
    [
        ("", "", "empty pipeline"),
        ("  # only a comment\n", "  # only", "empty pipeline"),
        ("! level", "!", "expected a source before `!`"),
        ("file location=a.wav ! ! level", "! level", "between `!` and `!`"),
        ("file location=a.wav ! level !", "!", "expected an element after this `!`"),
        ("vad ! level", "vad", "a pipeline starts with a source"),
        ("tee name=t ! level", "tee", "a tee"),
        ("location=a.wav ! level", "location", "expected an element name"),
        ('file location="a.wav ! level', '"', 'this " is never closed'),
        ("file location='a.wav ! level", "'", "this ' is never closed"),
        ("file location=a.wav ! audio/x-raw,rat=8000 ! level", "rat=", "unknown caps field"),
        ("file location=a.wav ! audio/x-raw,rate=x ! level", "x !", "positive int"),
        ("file location=a.wav ! video/x-raw ! level", "video", "unsupported caps"),
        ("file location=a.wav ! a.wav", "a.wav", "file location=a.wav)"),
    ],
)
def test_syntax_errors(text: str, at: str, says: str) -> None:
    assert says in _err(text, at).reason


def test_structure_errors(tmp_path: Path) -> None:
    j = f"jsonl location={tmp_path}/a.jsonl"
    f = f"file location={S}"
    assert "a second source" in _err(f"{f} ! level  file location={S}", "file").reason
    assert "it can only start the pipeline" in _err(f"{f} ! mic ! level", "mic").reason
    assert "jsonl is a sink: nothing can follow it" in _err(f"{f} ! {j} ! level", "! level").reason
    e = _err(f"{f} ! tee name=t  t. ! level  u. ! level", "u.")
    assert "no tee named 'u'" in e.reason and "t." in e.reason
    e = _err(f"{f} ! level name=lv  lv. ! {j}", "lv.")
    assert "lv is a level, not a tee" in e.reason
    assert "has no branches" in _err(f"{f} ! tee name=t", "tee").reason
    assert "expected `!` after t." in _err(f"{f} ! tee name=t  t. level", "level").reason
    assert "expected `!` after t." in _err(f"{f} ! tee name=t  t.", "t.").reason
    assert "not after `!`" in _err(f"{f} ! tee name=t ! t.", "t.").reason
    assert "used twice" in _err(f"{f} ! tee name=t ! level name=t", "t").reason
    assert "set twice" in _err(f"{f} block_size=8 block-size=9 ! level", "block-size").reason
    assert "file leads nowhere" in _err(f, "file").reason
    e = _err(f"{f} ! jsonl serialize=str location=x.jsonl", "serialize")
    assert "cannot be set from a launch string" in e.reason
    e = _err("file ! level", "file")
    assert "file needs path= (or location=)" in e.reason
    e = _err(f"file location={tmp_path}/missing.wav ! level", f"{tmp_path}/missing.wav")
    assert "no such file" in e.reason
    e = _err(f"{f} ! tee name=t  t. ! level  t. ! tee name=t2 ! level  t3. ! level", "t3.")
    assert "did you mean" in e.reason


def test_errors_on_a_later_line_say_line_and_column() -> None:
    text = f"file location={S}\n  ! vad\n  ! hysteresis treshold=1\n  ! level\n"
    e = _err(text, "treshold")
    assert (e.line, e.column) == (3, 16) and "(line 3, column 16)" in str(e)


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("file location=a.wav ! wav location=x\\", "\\"),  # would write a file named `x\`
        ("file location=a.wav \\\n  ! wav location=x.wav", "\\"),  # a shell-style continuation
        ("file location=a.wav ! wav location=x\\\n", "\\"),
    ],
)
def test_trailing_backslash_is_an_error(text: str, at: str) -> None:
    e = _err(text, at)
    assert "a trailing backslash escapes nothing" in e.reason and "\\\\" in e.reason


def test_escaped_backslash_is_a_backslash(tmp_path: Path) -> None:
    p = parse_launch(f"file location={S} ! wav location={tmp_path}/x\\\\y.wav")
    assert p.branches[0].location == f"{tmp_path}/x\\y.wav"


def test_one_file_on_two_branches_is_refused_with_both_named(tmp_path: Path) -> None:
    f = f"file location={S} ! tee name=t"
    text = f"{f}  t. ! jsonl location=a.jsonl  t. ! vad ! jsonl location=a.jsonl"
    e = _err(text, "a.jsonl")  # the caret under the second use
    col = text.index("a.jsonl") + 1
    assert f"jsonl1 writes 'a.jsonl', which jsonl0 (column {col}) writes already" in e.reason
    assert "give each sink its own location" in e.reason
    # resolved: relative and absolute, ./, a symlink, names and aliases, other sinks
    (tmp_path / "real.wav").write_bytes(b"")
    (tmp_path / "link.wav").symlink_to("real.wav")
    a = tmp_path / "a.jsonl"
    for first, second in [
        (f"jsonl location={a}", f"jsonl path={tmp_path}/./a.jsonl"),
        (f"wav location={tmp_path}/real.wav", f"wav name=out location={tmp_path}/link.wav"),
        (f"labels location={tmp_path}/s.rttm", f"labels location={tmp_path}/s.rttm"),
    ]:
        second_at = second.split("=")[-1]
        e = _err(f"{f}  t. ! {first}  t. ! {second}", second_at)
        assert "are one file" in e.reason or second_at in first
    e = _err(f"{f}  t. ! level ! jsonl location={a}  t. ! vad ! jsonl location={a}", str(a))
    assert "jsonl0" in e.reason and "jsonl1" in e.reason
    # on a later line: the first use's line and column
    text = f"{f}\n  t. ! jsonl location={a}\n  t. ! jsonl location={a}\n"
    e = _err(text, str(a))
    assert f"which jsonl0 (line 2, column {len('  t. ! jsonl location=') + 1})" in e.reason


def test_templated_locations_collide_only_when_the_same(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    f = f"file location={S} ! tee name=t"
    tpl = f"{tmp_path}/a/{{id}}.jsonl"
    same = f"{f}  t. ! jsonl location={tpl}  t. ! vad ! jsonl location={tpl}"
    assert "writes already" in _err(same, tpl).reason
    differ = [
        f"{tmp_path}/a/{{id}}.jsonl",
        f"{tmp_path}/b/{{id}}.jsonl",
        f"{tmp_path}/a/{{id}}-v.jsonl",
    ]
    p = parse_launch(f + "".join(f"  t. ! level ! jsonl location={x}" for x in differ))
    assert [b.location for b in p.branches if b.location] == differ
    # wavdir: one folder, different file names in it, is fine; the same stem is not
    w = f"vad ! hysteresis ! buffer_utterance ! wavdir location={tmp_path}/utts"
    parse_launch(f"{f}  t. ! {w}  t. ! {w} stem=b-")
    e = _err(f"{f}  t. ! {w} stem=utt-  t. ! {w}", f"{tmp_path}/utts")
    assert "wavdir0" in e.reason


def test_resample_then_vad_negotiates_and_reports(tmp_path: Path) -> None:
    p = parse_launch(
        f"file location={S} ! resample rate=8000 ! vad ! jsonl location={tmp_path}/v.jsonl"
    )
    report = p.caps_report()
    assert report.splitlines()[0] == "file: audio/x-raw,rate=16000,channels=1,frame=1024"
    assert "file ! resample: audio/x-raw,rate=16000,channels=1,frame=1024" in report
    # the resampler's frames are not 1024 samples any more; vad converts for its model itself
    assert "resample ! vad: audio/x-raw,rate=8000,channels=1\n" in report
    assert "vad ! jsonl: rxaudio/vad" in report
    assert report.endswith("conversions inserted: none")
    p.run()
    lines = (tmp_path / "v.jsonl").read_text().splitlines()
    assert lines and json.loads(lines[0])["type"] == "vad"


def test_caps_filter_inserts_the_conversions_and_reports_them(tmp_path: Path) -> None:
    import soundfile as sf

    out = tmp_path / "o.wav"
    p = parse_launch(
        f"file location={S} ! audio/x-raw,rate=(int)8000,channels=2,frame=256 ! wav location={out}"
    )
    inserted = [k for k in p.links if k.inserted]
    assert len(inserted) == 1
    assert inserted[0].inserted == ("channels 1 -> 2", "rate 16000 -> 8000 Hz", "frame 1024 -> 256")
    assert "conversions inserted:\n  before audio/x-raw,rate=(int)8000" in p.caps_report()
    (receipt,) = p.run()
    info = sf.info(str(out))
    assert (info.samplerate, info.channels) == (8000, 2)
    assert abs(info.frames - 17.075 * 8000) <= 8 and receipt.path == str(out)


def test_link_inserts_only_the_fields_that_differ() -> None:
    from rxaudio.operators import level, map_operator, resample

    seen: list[AudioFrame] = []

    def probe(f: AudioFrame) -> AudioFrame:
        seen.append(f)
        return f

    needs = map_operator("needs", probe, accepts=Caps(16000, 1, 512))
    linked = link([needs, level()], upstream=Caps(16000, 1, 1024), upstream_name="src")
    assert [k.inserted for k in linked.links] == [("frame 1024 -> 512",), ()]
    linked = link([resample(8000), needs], upstream=Caps(48000, 2, 480))
    assert linked.links[1].inserted == (
        "channels 2 -> 1",
        "rate 8000 -> 16000 Hz",
        "frame ? -> 512",
    )
    assert link([needs], upstream=Caps(16000, 1, 512)).inserted == ()
    assert linked.caps == Caps(16000, 1, 512)


def test_impossible_link_names_both_elements_both_caps_and_what_fits(tmp_path: Path) -> None:
    e = _err(f"file location={S} ! hysteresis ! wav location={tmp_path}/b.wav", "hysteresis")
    for part in (
        "cannot link file to hysteresis",
        "audio/x-raw,rate=16000,channels=1,frame=1024",
        "rxaudio/vad",
        "put vad between them (file ! vad ! hysteresis)",
    ):
        assert part in e.reason
    e = _err(f"file location={S} ! level ! wav location={tmp_path}/b.wav", "wav location")
    for part in ("cannot link level to wav", "rxaudio/level", "audio/x-raw", "jsonl"):
        assert part in e.reason
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written
    with pytest.raises(LinkError) as info:
        link([registry.make("hysteresis")], upstream=Caps(16000))
    assert info.value.fits == ("vad",) and info.value.index == 0


def test_an_error_in_one_branch_finalizes_the_others_before_it_is_raised(tmp_path: Path) -> None:
    import soundfile as sf

    x = np.full(16000, 0.1, dtype=np.float32)
    x[6000] = np.nan
    src = tmp_path / "nan.wav"
    sf.write(str(src), x, 16000, subtype="FLOAT")
    for k in range(5):  # the error arrives on the source's thread: no race with run()'s return
        lv = tmp_path / f"l{k}.jsonl"
        p = parse_launch(
            f"file location={src} block_size=512 ! tee name=t  t. ! wav location={tmp_path}/o.wav"
            f"  t. ! level ! jsonl location={lv}"
        )
        with pytest.raises(Exception, match="NaN or inf samples"):
            p.run()
        assert lv.read_text().count("\n") == 11 and not Path(partial_name(str(lv))).exists()


def test_a_launched_chain_runs_fused_and_gives_the_unfused_items() -> None:
    import reactivex as rx

    from rxaudio.core.fuse import Fused, fuse
    from rxaudio.operators import buffer_utterance, hysteresis, vad
    from rxaudio.sources import from_file

    p = parse_launch(
        f"file location={S} block_size=3000 ! vad ! hysteresis threshold=0.4 "
        "! buffer_utterance passthrough=true"
    )
    (branch,) = p.branches
    assert len(branch.operators) == 3  # the chain as written: three elements
    out: list[Any] = []
    p.observable().subscribe(out.append)
    ref: list[Any] = []
    steps = [vad(), hysteresis(threshold=0.4), buffer_utterance(passthrough=True)]
    from_file(S, block_size=3000).pipe(rx.compose(*steps)).subscribe(ref.append)
    assert [x.to_dict() for x in out] == [x.to_dict() for x in ref] and len(out) > 100
    (fused,) = fuse(*branch.operators)  # what the pipeline runs: one operator
    assert isinstance(fused, Fused) and len(fused.parts) == 3

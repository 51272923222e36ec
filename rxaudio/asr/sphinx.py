"""PocketSphinx: the default offline recogniser (US English, model shipped in the wheel).

CMU PocketSphinx 5 (``pip install pocketsphinx``) ships an acoustic model, a trigram language
model and the CMU pronouncing dictionary; nothing is downloaded at run time. Its accuracy on
open-vocabulary speech is modest (``docs/benchmarks.md`` measures it); a custom language model
or dictionary, or keyword spotting for a short list of command phrases, helps a narrow domain.
"""

from __future__ import annotations

import os
import re
import tempfile
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .base import Recognition, WordTiming

FRAME_RATE = 100  # PocketSphinx's feature frames per second (its default ``frate``)
_ALT = re.compile(r"\(\d+\)$")  # "read(2)": the dictionary's second pronunciation


def _path(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not os.path.isfile(value):
        raise ConfigError(f"transcribe: {option} {value!r} is not a file; give an existing path")
    return value


@lru_cache(maxsize=4)
def _dictionary_words(path: str) -> frozenset[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return frozenset(_ALT.sub("", ln.split(maxsplit=1)[0]).lower() for ln in f if ln.strip())


def default_dictionary() -> str:
    """The CMU dictionary shipped with the ``pocketsphinx`` wheel."""
    import pocketsphinx

    return os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")


def keyphrases(text: str | None) -> list[str]:
    """The phrases of a comma-separated keyphrase list, lower case, blanks squeezed."""
    if text is None:
        return []
    return [" ".join(p.lower().split()) for p in text.split(",") if p.strip()]


class PocketSphinx:
    """The PocketSphinx recogniser, one decoder per stream (decoders are not thread-safe).

    Parameters
    ----------
    lm
        An ARPA or binary language model file (default: the wheel's US-English trigram model).
    dictionary
        A pronouncing dictionary file (default: the wheel's CMU dictionary).
    keyphrase
        Comma-separated command phrases: keyword spotting instead of free recognition; only
        these phrases are ever reported. Every word must be in the dictionary.
    kws_threshold
        Detection threshold of keyword spotting (smaller: more detections, more false ones).
    """

    name: ClassVar[str] = "pocketsphinx"
    sample_rate: ClassVar[int] = 16000
    holds_gil: ClassVar[bool] = True  # decoding keeps the GIL: run it in a process of its own

    @classmethod
    def check(
        cls,
        *,
        lm: str | None = None,
        dictionary: str | None = None,
        keyphrase: str | None = None,
        kws_threshold: float = 1e-20,
    ) -> None:
        """Validate the options without loading the model (ConfigError names the bad one)."""
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            raise ConfigError(
                "transcribe: the pocketsphinx backend needs the pocketsphinx package; "
                "install it with pip install 'rxaudio[asr]'"
            ) from None
        _path("lm", lm)
        d = _path("dictionary", dictionary) or default_dictionary()
        if keyphrase is not None:
            phrases = keyphrases(keyphrase)
            if not phrases:
                raise ConfigError("transcribe: keyphrase is empty; give comma-separated phrases")
            if lm is not None:
                raise ConfigError("transcribe: give lm or keyphrase, not both")
            known = _dictionary_words(d)
            missing = sorted({w for p in phrases for w in p.split() if w not in known})
            if missing:
                raise ConfigError(
                    f"transcribe: keyphrase word(s) {', '.join(missing)} not in the dictionary "
                    f"{os.path.basename(d)}; add them to a dictionary file and pass dictionary"
                )
        if not 0.0 < kws_threshold <= 1.0:
            raise ConfigError(f"transcribe: kws_threshold must be in (0, 1], got {kws_threshold}")

    def __init__(
        self,
        *,
        lm: str | None = None,
        dictionary: str | None = None,
        keyphrase: str | None = None,
        kws_threshold: float = 1e-20,
    ) -> None:
        self.check(lm=lm, dictionary=dictionary, keyphrase=keyphrase, kws_threshold=kws_threshold)
        from pocketsphinx import Decoder

        config: dict[str, Any] = {"loglevel": "FATAL"}
        if lm is not None:
            config["lm"] = lm
        if dictionary is not None:
            config["dict"] = dictionary
        if keyphrase is None:
            self._decoder: Any = Decoder(**config)
            self._cmn0 = self._decoder.get_cmn()
            return
        # keyword spotting reads its phrases from a file: a private temporary one, removed at once
        fd, kws = tempfile.mkstemp(suffix=".kws", prefix="rxaudio-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for p in keyphrases(keyphrase):
                    f.write(f"{p} /{kws_threshold:g}/\n")
            config["lm"] = None
            self._decoder = Decoder(kws=kws, **config)
        finally:
            os.remove(kws)
        self._cmn0 = self._decoder.get_cmn()

    def reset(self) -> None:
        """Forget what earlier utterances taught it: the cepstral mean goes back to its start
        (a warm recogniser process lent to a new stream decodes as a fresh one). The feature
        front end is rebuilt too: with the mean alone, the first utterance's confidences
        still differed from a new decoder's."""
        self._decoder.reinit_feat()
        self._decoder.set_cmn(self._cmn0)

    def recognize(self, samples: NDArray[np.float32]) -> Recognition:
        """Recognise one utterance (mono float32 at 16 kHz)."""
        pcm = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        words = []
        for s in d.seg() or ():
            w = s.word
            if w.startswith(("<", "[", "++")):  # <s>, </s>, <sil>, [NOISE], ++filler++
                continue
            words.append(
                WordTiming(
                    _ALT.sub("", w).strip(),
                    s.start_frame / FRAME_RATE,
                    (s.end_frame + 1) / FRAME_RATE,
                    float(min(max(s.prob, 0.0), 1.0)),
                )
            )
        text = " ".join(w.word for w in words) if words else (hyp.hypstr if hyp else "")
        text = " ".join(text.split())
        conf = [w.confidence for w in words if w.confidence is not None]
        return Recognition(text.strip(), tuple(words), float(np.mean(conf)) if conf else None)

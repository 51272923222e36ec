"""The compiled part of rxaudio; everything else is declared in pyproject.toml.

The streaming STFT/mel/MFCC kernel (``rxaudio/dsp/_melkernel.c``) is optional: where no C
compiler works the package still installs, the numpy path serves
(``rxaudio.dsp.features.compiled_module()`` says which one runs), the build says so in one line,
and rxaudio says so once per process when the kernel is first looked for.
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_KERNEL = (
    "rxaudio: the C feature kernel (rxaudio/dsp/_melkernel.c) was not built ({why}); "
    "installing with the numpy fallback (same results, slower features); "
    "install a C compiler (e.g. gcc) and reinstall to build it"
)


class OptionalBuildExt(build_ext):
    """Build the kernel where a compiler works; otherwise one line, no traceback, no failure.

    The extension stays ``optional`` too, so that setuptools skips copying a kernel that was not
    built (editable installs)."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # the compiler failed (missing, broken, no Python headers)
            print(NO_KERNEL.format(why=_one_line(e)), file=sys.stderr)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


setup(
    cmdclass={"build_ext": OptionalBuildExt},
    ext_modules=[
        Extension(
            "rxaudio.dsp._melkernel",
            sources=["rxaudio/dsp/_melkernel.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-Wno-psabi"],
            optional=True,
        )
    ],
)

"""The compiled part of rxaudio; everything else is declared in pyproject.toml.

The streaming STFT/mel/MFCC kernel (``rxaudio/dsp/_melkernel.c``) is optional: where no C
compiler is found the package still installs and the numpy path serves
(``rxaudio.dsp.features.compiled_module()`` says which one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rxaudio.dsp._melkernel",
            sources=["rxaudio/dsp/_melkernel.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-Wno-psabi"],
            optional=True,
        )
    ]
)

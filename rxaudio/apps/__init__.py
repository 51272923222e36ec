"""The command-line apps (``rxaudio ...``)."""

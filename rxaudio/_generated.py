"""Generated blocks in the docs: a table between two marker comments, renewed from the code.

``docs/protocol.md``'s option, error and close tables and ``docs/apps/serve.md``'s option
table are written by the modules that declare them (each has a test that fails when its block
is stale). Pure Python, no imports: ``serve --help`` may load the declaring modules.
"""

from __future__ import annotations


def renew_block(doc: str, begin: str, end: str, body: str) -> str:
    """``doc`` with the text between ``begin`` and ``end`` replaced by ``body``.

    Raises ``ValueError`` when ``doc`` has no such block (a page whose markers were removed).
    """
    head, found, rest = doc.partition(begin)
    _, closed, tail = rest.partition(end)
    if not found or not closed:
        raise ValueError(f"no {begin} ... {end} block")
    return f"{head}{begin}\n{body}{end}{tail}"

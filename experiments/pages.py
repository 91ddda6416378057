"""The pages' tables and figures, written from the data in results/: Table 1's from results/burda2015.csv
(experiments/tables.py, experiments/figure.py), the gradients' SNR from results/snr.csv (experiments/snr_data.py).
Each generated table sits between two markers on its page, and nothing inside them is written by hand.

    python -m experiments.pages      # rewrite the tables of README.md, docs/literature.md and docs/snr.md, and the figures
"""
import re

from experiments import figure, snr_data, tables
from experiments.results import ROOT, read
from files import atomic_paths

PAGES = (ROOT / "README.md", ROOT / "docs" / "literature.md", ROOT / "docs" / "snr.md")
BEGIN, END = "<!-- generated from results/ by `python -m experiments.pages`: {} -->", "<!-- end of generated table -->"


def render(page_text, rows, snr_rows=None):
    """The page with each generated table rewritten from the data: Table 1's `rows`, and the SNR's (by default,
    results/snr.csv's)."""
    snr_rows = snr_data.read() if snr_rows is None else snr_rows

    def block(match):
        name = match[1]
        text = tables.TABLES[name](rows) if name in tables.TABLES else snr_data.TABLES[name](snr_rows)
        return f"{BEGIN.format(name)}\n{text}\n{END}"

    pattern = re.escape(BEGIN).replace(r"\{\}", r"([\w-]+)") + r"\n.*?" + re.escape(END)
    return re.sub(pattern, block, page_text, flags=re.S)


def main():
    rows, snr_rows = read(), snr_data.read()
    figures = (figure.FIGURE, snr_data.FIGURE)
    with atomic_paths([*PAGES, *figures]) as temporaries:  # the pages and the figures all new, or all as they were
        for page, temporary in zip(PAGES, temporaries):
            temporary.write_text(render(page.read_text(), rows, snr_rows))
        figure.figure(rows, temporaries[len(PAGES)])
        snr_data.figure(snr_rows, temporaries[len(PAGES) + 1])
    print(f"wrote the tables of {', '.join(str(page.relative_to(ROOT)) for page in PAGES)} and the figures "
          f"{', '.join(str(path.relative_to(ROOT)) for path in figures)}")


if __name__ == "__main__":
    main()

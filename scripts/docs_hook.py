"""MkDocs hook (mkdocs.yml `hooks:`): results tables and figures come from `results/`, never retyped.

- `on_config`: fails the build when README.md's headline table differs from `results/`.
- `on_files`: adds the figures of `results/` to the site under `results/figures/`.
- `on_page_markdown`: replaces each `<!-- results: NAME -->` line with the table `scripts/results_tables.py`
  computes from the files.
"""

import os
import sys

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results_tables  # noqa: E402

FIGURES = {  # site path under results/figures/ -> file in results/
    "bits.png": "sweep_fast/bits.png",
    "scatter_jq4.png": "jq4_s0/scatter.png",
    "bits_lenet5.png": "lenet5_lenet-aug/bits.png",
    "pareto_mlp.png": "pareto_mlp/pareto.png",
    "pareto_lenet5.png": "pareto_lenet5/pareto.png",
}


def on_config(config):
    with open(results_tables.README) as f:
        text = f.read()
    if results_tables.readme_with_headline(text) != text:
        raise PluginError("README.md's headline table differs from results/: run "
                          "`python scripts/results_tables.py --write-readme`")
    return config


def on_files(files, config):
    for name, src in FIGURES.items():
        files.append(File.generated(config, f"results/figures/{name}",
                                    abs_src_path=os.path.join(results_tables.RESULTS, src)))
    return files


def on_page_markdown(markdown, page, config, files):
    try:
        return results_tables.expand(markdown)
    except (KeyError, OSError, ValueError) as e:
        raise PluginError(f"{page.file.src_uri}: {e}") from e

"""Draw the workflow's rule graph (``snakemake --rulegraph``) as docs/rulegraph.png.

Graphviz is not a dependency, so the graph is laid out here: rules in columns by their
longest path from the inputs, in the order Snakemake lists them. Re-run after adding rules:

    python tools/rulegraph.py                      # an empty directory: the rules before the split checkpoint
    python tools/rulegraph.py --workdir RUN_DIR    # a finished default run: every rule the run has
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def rule_graph(workdir: Path | None = None) -> nx.DiGraph:
    """The rule graph of the default config in ``workdir`` (None: an empty one). Snakemake
    knows the rules after the split checkpoint only once its tables exist: in a finished run."""
    with tempfile.TemporaryDirectory() as scratch:
        dot = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir or scratch),
                              "--rulegraph"], capture_output=True, text=True, check=True).stdout
    graph = nx.DiGraph()
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    graph.add_nodes_from(labels.values())
    graph.add_edges_from((labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M))
    graph.remove_node("all")  # the target rule: every output, no work
    return graph


def main(out: Path = REPO / "docs" / "rulegraph.png") -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="a finished run of the default config (every rule drawn)")
    graph = rule_graph(parser.parse_args().workdir)
    for node in nx.topological_sort(graph):
        graph.nodes[node]["layer"] = max((graph.nodes[p]["layer"] + 1 for p in graph.predecessors(node)), default=0)
    position = nx.multipartite_layout(graph, subset_key="layer", align="vertical", scale=1.0)
    fig, ax = plt.subplots(figsize=(16, 7))
    nx.draw_networkx_edges(graph, position, ax=ax, edge_color="0.7", arrows=True, arrowsize=8, node_size=2500,
                           connectionstyle="arc3,rad=0.12")  # curved: straight edges run through the rules between
    nx.draw_networkx_labels(graph, position, ax=ax, font_size=7,
                            bbox={"boxstyle": "round", "facecolor": "#e8f0fa", "edgecolor": "#4a78b0"})
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {graph.number_of_nodes()} rules, {graph.number_of_edges()} dependencies")


if __name__ == "__main__":
    main()

"""Diagrams (symgrad/render.py): structure, styles, highlight, escaping, rendering, notebooks.

The DOT text is read back with a small parser of its own (for the structure) and with
Graphviz's ``dot -Tjson`` (for what Graphviz itself makes of hostile names).
"""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
import sympy as sp
from models import seed_model

import symgrad
from symgrad import render
from symgrad.errors import SymgradError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")

PNG = b"\x89PNG\r\n\x1a\n"

# -- models ------------------------------------------------------------------------------------



def chain_model(layers: int) -> symgrad.CompiledModel:
    """h_i = sigmoid(w_i*h_{i-1} + c_i), h_0 = x; Loss = mean((h_n - y)²)."""
    x, y = sp.symbols("x y")
    h, equations, params = x, [], []
    for i in range(1, layers + 1):
        w, c, hi = sp.symbols(f"w{i} c{i} h{i}")
        equations.append((hi, symgrad.sigmoid(w * h + c)))
        params += [w, c]
        h = hi
    equations.append((sp.Symbol("Loss"), symgrad.mean((h - y) ** 2)))
    return symgrad.compile(equations, wrt=params)


HOSTILE = [
    'a"b', "<b>bold</b>", "{x|y}", "back\\slash", "new\nline", '];evil=1;x[label="x"',
    "&amp;", "a'b", '\\"', "end\\", "<<", ">", "|", "}", "σ τ", "\\N\\G\\L", "bell\x07",
    "-->", "subgraph", "node",
]  # fmt: skip


def hostile_model() -> symgrad.CompiledModel:
    """A chain of equations whose every name is trouble for DOT, HTML or LaTeX."""
    s = [sp.Symbol(n) for n in HOSTILE]  # s[0:10] inputs, s[10:19] equations, s[19] output
    equations, previous = [], s[0]
    for i in range(1, 10):
        equations.append((s[9 + i], symgrad.sigmoid(previous * s[i] + 1)))
        previous = s[9 + i]
    equations.append((s[19], symgrad.mean((previous - s[9]) ** 2)))
    return symgrad.compile(equations)


def single_expression_model() -> symgrad.CompiledModel:
    x, y, k, b = sp.symbols("x y k b")
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


@pytest.fixture(scope="module")
def seed():
    return seed_model()


# -- reading DOT back --------------------------------------------------------------------------

_ATTR = re.compile(r'\s*([\w]+)=(<(?:[^<>]|<(?:[^<>]|<[^<>]*>)*>)*>|"(?:[^"\\]|\\.)*"|[^\s\]]+)')


def _attrs(text: str) -> dict[str, str]:
    attrs, pos = {}, 0
    while pos < len(text):
        m = _ATTR.match(text, pos)
        assert m, f"cannot read attributes at {text[pos:]!r}"
        key, value = m.groups()
        attrs[key] = value[1:-1] if value[0] in '<"' else value
        pos = m.end()
    return attrs


def read_dot(source: str):
    """(nodes: id -> attributes with 'title', edges: [(tail, head, attributes)])."""
    nodes, edges = {}, []
    for line in source.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"(\w+) -> (\w+)(?: \[(.*)\])?", line):
            edges.append((m[1], m[2], _attrs(m[3] or "")))
        elif (m := re.fullmatch(r"(\w+) \[(.*)\]", line)) and m[1] not in ("graph", "node", "edge"):
            attrs = _attrs(m[2])
            attrs["title"] = html.unescape(re.search(r"<b>(.*?)</b>", attrs["label"])[1])
            nodes[m[1]] = attrs
    return nodes, edges


def titled_edges(source: str) -> set[tuple[str, str]]:
    """Edges by node title, in the direction the arrow points (dir=back turns it round)."""
    nodes, edges = read_dot(source)
    out = set()
    for tail, head, attrs in edges:
        a, b = nodes[tail]["title"], nodes[head]["title"]
        out.add((b, a) if attrs.get("dir") == "back" else (a, b))
    return out


def dot_json(source: str) -> dict:
    """What Graphviz itself reads in ``source`` (its JSON output)."""
    done = subprocess.run(["dot", "-Tjson"], input=source.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


# -- the forward diagram -----------------------------------------------------------------------

TUTORIAL = {
    ("k1", "L1"), ("b1", "L1"), ("x", "L1"), ("L1", "σ"), ("σ", "L2"), ("k2", "L2"),
    ("b2", "L2"), ("L2", "Loss"), ("y", "Loss"),
}  # fmt: skip


def test_forward_is_the_tutorials_diagram(seed):
    source = seed.to_dot()
    nodes, _ = read_dot(source)
    assert sorted(n["title"] for n in nodes.values()) == sorted(
        ["b1", "b2", "k1", "k2", "x", "y", "L1", "σ", "L2", "Loss"]
    )
    assert titled_edges(source) == TUTORIAL


def test_forward_labels_carry_the_operation(seed):
    nodes, _ = read_dot(seed.to_dot())
    labels = {n["title"]: html.unescape(n["label"]) for n in nodes.values()}
    assert "k1·x + b1" in labels["L1"]
    assert "sigmoid(L1)" in labels["σ"]
    assert "mean((L2 − y)²)" in labels["Loss"]
    assert "parameter" in labels["k1"] and "input" in labels["x"]


def test_roles_have_distinct_consistent_styles(seed):
    nodes, _ = read_dot(seed.to_dot())
    style = {n["title"]: (n.get("shape"), n["fillcolor"], n["color"]) for n in nodes.values()}
    params = {style[p] for p in ("k1", "b1", "k2", "b2")}
    inputs = {style[p] for p in ("x", "y")}
    named = {style[p] for p in ("L1", "σ", "L2")}
    assert len(params) == len(inputs) == len(named) == 1  # consistent
    assert len(params | inputs | named | {style["Loss"]}) == 4  # distinct


def test_collapse_cluster_and_none(seed):
    collapsed = read_dot(seed.to_dot(group="collapse"))[0]
    full = read_dot(seed.to_dot(group="none"))[0]
    assert not any(re.fullmatch(r"t\d+", n["title"]) for n in collapsed.values())
    temps = [n for n in full.values() if re.fullmatch(r"t\d+", n["title"])]
    assert temps and all("dashed" in n["style"] for n in temps)
    clustered = seed.to_dot(group="cluster")
    assert len(re.findall(r"subgraph cluster_", clustered)) == 4  # one box per equation
    assert "label=<σ>" in clustered


def test_auto_group_collapses_equations_and_shows_an_expression_in_full(seed):
    assert seed.to_dot() == seed.to_dot(group="collapse")
    single = single_expression_model()
    assert single.to_dot() == single.to_dot(group="none")
    titles = {n["title"] for n in read_dot(single.to_dot())[0].values()}
    assert {"b", "k", "x", "y", "f"} < titles and len(titles) > 5


def test_users_names_are_kept():
    a, b, f = sp.symbols("a_b σ₁ Loss tot")[:3]
    model = symgrad.compile([(b, a**2), (f, 3 * b)])
    titles = {n["title"] for n in read_dot(model.to_dot())[0].values()}
    assert titles == {"a_b", "σ₁", "Loss"}


def test_rankdir_auto_turns_deep_models_top_down(seed):
    assert "rankdir=LR" in seed.to_dot()
    assert "rankdir=TB" in chain_model(20).to_dot()
    assert "rankdir=LR" in chain_model(20).to_dot(rankdir="LR")


# -- the backward diagram ----------------------------------------------------------------------


def test_backward_flows_from_the_output_to_every_parameter(seed):
    edges = titled_edges(seed.to_dot("backward"))
    d = {n: f"∂Loss/∂{n}" for n in ["Loss", "L2", "σ", "L1", "k1", "b1", "k2", "b2"]}
    assert edges == {
        (d["Loss"], d["L2"]), (d["L2"], d["σ"]), (d["σ"], d["L1"]), (d["L1"], d["k1"]),
        (d["L1"], d["b1"]), (d["L2"], d["k2"]), (d["L2"], d["b2"]),
    }  # fmt: skip


def test_backward_edges_carry_their_local_factor(seed):
    _, edges = read_dot(seed.to_dot("backward"))
    labels = {html.unescape(attrs["label"]) for _, _, attrs in edges}
    assert labels == {
        "∂Loss/∂L2 = 2·(L2 − y)/N",
        "∂L2/∂σ = k2",
        "∂σ/∂L1 = σ·(1 − σ)",
        "∂L1/∂k1 = x",
        "∂L1/∂b1 = 1",
        "∂L2/∂k2 = σ",
        "∂L2/∂b2 = 1",
    }


def test_backward_nodes_name_their_code_variable(seed):
    nodes, _ = read_dot(seed.to_dot("backward"))
    label = {n["title"]: html.unescape(n["label"]) for n in nodes.values()}
    assert "dσ" in label["∂Loss/∂σ"] and "dk1" in label["∂Loss/∂k1"]
    assert ">1<" in label["∂Loss/∂Loss"]


def test_both_draws_forward_and_backward_side_by_side(seed):
    both = seed.to_dot("both")
    assert "subgraph cluster_forward" in both and "subgraph cluster_backward" in both
    edges = titled_edges(both)
    assert TUTORIAL <= edges
    assert ("∂Loss/∂σ", "∂Loss/∂L1") in edges


def test_a_parameter_the_output_ignores_has_a_zero_gradient_node():
    x, k, q = sp.symbols("x k q")
    model = symgrad.compile([(sp.Symbol("u"), q + 1), (sp.Symbol("f"), k * x)], wrt=[k, q])
    nodes, _ = read_dot(model.to_dot("backward"))
    label = {n["title"]: html.unescape(n["label"]) for n in nodes.values()}
    assert ">0<" in label["∂f/∂q"]


# -- highlight ---------------------------------------------------------------------------------


def chain_edges_by_search(nodes, edges, start: str, end: str) -> set[tuple[str, str]]:
    """Every edge on some path from ``start`` to ``end``, by enumerating the paths."""
    forward = {}
    for tail, head, attrs in edges:
        a, b = (head, tail) if attrs.get("dir") == "back" else (tail, head)
        forward.setdefault(a, []).append(b)
    found = set()

    def walk(node, path):
        if node == end:
            found.update(itertools.pairwise(path))
            return
        for nxt in forward.get(node, []):
            walk(nxt, [*path, nxt])

    walk(start, [start])
    return found


@pytest.mark.parametrize("kind", ["forward", "backward", "both"])
@pytest.mark.parametrize("group", ["collapse", "cluster", "none"])
def test_highlight_marks_exactly_the_edges_on_the_chain(seed, kind, group):
    for param in seed.wrt:
        nodes, edges = read_dot(seed.to_dot(kind, highlight=param, group=group))
        by_title = {}
        for ident, attrs in nodes.items():
            by_title.setdefault(attrs["title"], []).append(ident)
        marked = {(t, h) for t, h, attrs in edges if attrs.get("class") == "chain"}
        thick = {(t, h) for t, h, attrs in edges if attrs.get("penwidth") == "2.5"}
        assert marked == thick
        expected = set()
        if kind in ("forward", "both"):  # from the parameter up to the output
            (p,), (out,) = by_title[param], by_title["Loss"]
            expected |= chain_edges_by_search(nodes, edges, p, out)
        if kind in ("backward", "both"):  # from ∂Loss/∂Loss down to ∂Loss/∂param
            (p,), (out,) = by_title[f"∂Loss/∂{param}"], by_title["∂Loss/∂Loss"]
            flow = chain_edges_by_search(nodes, edges, out, p)
            expected |= {(b, a) for a, b in flow}  # as written: operand side first
        marked = {(t, h) for t, h in marked}
        assert marked == expected, (param, kind, group)
        assert expected


def test_highlight_of_the_seed_chain_by_name(seed):
    nodes, edges = read_dot(seed.to_dot(highlight="k1"))
    marked = {
        (nodes[t]["title"], nodes[h]["title"]) for t, h, a in edges if a.get("class") == "chain"
    }
    assert marked == {("k1", "L1"), ("L1", "σ"), ("σ", "L2"), ("L2", "Loss")}
    on_chain = {n["title"] for n in nodes.values() if n["penwidth"] == "3"}
    assert on_chain == {"k1", "L1", "σ", "L2", "Loss"}


def test_highlight_in_a_deep_chain():
    model = chain_model(8)
    nodes, edges = read_dot(model.to_dot("backward", highlight="w5"))
    marked = {
        (nodes[t]["title"], nodes[h]["title"]) for t, h, a in edges if a.get("class") == "chain"
    }
    assert len(marked) == 5  # ∂Loss/∂Loss -> h8 -> h7 -> h6 -> h5 -> w5
    assert ("∂Loss/∂w5", "∂Loss/∂h5") in marked


def test_highlight_unknown_parameter_is_an_error(seed):
    with pytest.raises(SymgradError, match="nope"):
        seed.to_dot(highlight="nope")


# -- bad arguments -----------------------------------------------------------------------------


def test_unknown_kind_or_group_is_an_error(seed):
    with pytest.raises(SymgradError, match="unknown diagram kind 'sideways'"):
        seed.to_dot("sideways")
    with pytest.raises(SymgradError, match="unknown group"):
        seed.to_dot(group="everything")


# -- escaping ----------------------------------------------------------------------------------


def test_escape():
    text = render.escape('<a href="x">&\n\x00{|}')
    assert "<" not in text and ">" not in text and '"' not in text
    assert "\n" not in text and "\x00" not in text
    assert html.unescape(text) == '<a href="x">&\\n\\x00{|}'


def test_hostile_names_stay_inside_their_labels():
    model = hostile_model()
    for kind in render.KINDS:
        for group in ("collapse", "none"):
            nodes, _ = read_dot(model.to_dot(kind, group=group))
            titles = {n["title"] for n in nodes.values()}
            names = [n.encode("unicode_escape").decode() if not n.isprintable() else n
                     for n in HOSTILE]  # fmt: skip
            if kind == "forward":
                assert set(names) <= titles
            else:
                assert {f"∂node/∂{n}" for n in names} <= titles


@needs_dot
@pytest.mark.parametrize("kind", render.KINDS)
@pytest.mark.parametrize("group", render.GROUPS)
def test_graphviz_reads_hostile_names_as_plain_text(kind, group):
    model = hostile_model()
    source = model.to_dot(kind, highlight=HOSTILE[0], group=group)
    nodes, edges = read_dot(source)
    seen = dot_json(source)
    objects = [o for o in seen["objects"] if "nodes" not in o]  # not clusters
    assert len(objects) == len(nodes) and len(seen.get("edges", [])) == len(edges)
    assert not any("evil" in o for o in [seen, *seen["objects"], *seen.get("edges", [])])
    titles = {html.unescape(re.search(r"<b>(.*?)</b>", o["label"])[1]) for o in objects}
    assert titles == {n["title"] for n in nodes.values()}


def matrix_model() -> symgrad.CompiledModel:
    X, W1, b1, W2, b2, y, L1, H, L2, Loss = sp.symbols("X W1 b1 W2 b2 y L1 H L2 Loss")
    return symgrad.compile(
        [(L1, symgrad.matmul(X, W1) + b1), (H, symgrad.sigmoid(L1)),
         (L2, symgrad.matmul(H, W2) + b2), (Loss, symgrad.mean((L2 - y) ** 2))],
        wrt=[W1, b1, W2, b2],
    )  # fmt: skip


MODELS = {
    "seed": seed_model,
    "matrix": matrix_model,
    "hostile": hostile_model,
    "single": single_expression_model,
    "chain": lambda: chain_model(5),
}


@needs_dot
@pytest.mark.parametrize("name", MODELS)
def test_dot_accepts_every_diagram(name):
    model = MODELS[name]()
    for kind, group, highlight in itertools.product(
        render.KINDS, render.GROUPS, [None, model.wrt[0]]
    ):
        source = model.to_dot(kind, highlight=highlight, group=group)
        done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True)
        assert done.returncode == 0 and not done.stderr, (kind, group, done.stderr)
        ET.fromstring(done.stdout)


# -- rendering ---------------------------------------------------------------------------------


@needs_dot
def test_render_svg_png_pdf_by_suffix(seed, tmp_path):
    svg = seed.render(tmp_path / "forward.svg")
    assert svg == tmp_path / "forward.svg"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "σ" in svg.read_text(encoding="utf-8")
    png = seed.render(tmp_path / "backward.png", kind="backward", highlight="k1")
    assert png.read_bytes().startswith(PNG)
    pdf = seed.render(str(tmp_path / "both.pdf"), kind="both")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_render_dot_text_needs_no_graphviz(seed, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    path = seed.render(tmp_path / "forward.gv")
    assert path.read_text(encoding="utf-8") == seed.to_dot()


def test_render_unknown_suffix_is_an_error(seed, tmp_path):
    with pytest.raises(SymgradError, match=r"\.bmp"):
        seed.render(tmp_path / "picture.bmp")


def test_missing_dot_says_how_to_install_it(seed, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot program anywhere
    assert "digraph forward" in seed.to_dot()  # DOT text needs no Graphviz
    with pytest.raises(render.GraphvizNotFound) as caught:
        seed.render(tmp_path / "forward.svg")
    message = str(caught.value)
    assert isinstance(caught.value, SymgradError)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install"):
        assert hint in message
    assert not (tmp_path / "forward.svg").exists()


@needs_dot
def test_a_100_layer_chain_renders_in_seconds(tmp_path):
    model = chain_model(100)
    start = time.perf_counter()
    for kind in render.KINDS:
        model.render(tmp_path / f"{kind}.svg", kind=kind)
    assert time.perf_counter() - start < 20  # about 2 s on a laptop, for all three
    nodes, _ = read_dot(model.to_dot())
    assert len(nodes) == 100 + 200 + 2 + 1  # h1..h100, w and c, x and y, Loss


# -- notebooks ---------------------------------------------------------------------------------


@needs_dot
def test_mimebundle_shows_the_forward_diagram_and_the_chains(seed):
    bundle = seed._repr_mimebundle_()
    assert bundle["text/plain"] == repr(seed)
    ET.fromstring(bundle["image/svg+xml"])
    assert r"\frac{\partial \mathrm{Loss}}{\partial k_{1}}" in bundle["text/markdown"]
    page = bundle["text/html"]
    assert "<svg" in page and "<?xml" not in page
    assert html.escape("∂Loss/∂k1 = ∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1") in page


def test_mimebundle_without_graphviz_still_shows_the_chains(seed, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    bundle = seed._repr_mimebundle_()
    assert "image/svg+xml" not in bundle
    assert "∂Loss/∂L2·∂L2/∂b2" in bundle["text/html"]
    assert "apt-get install graphviz" in bundle["text/html"]
    assert bundle["text/markdown"].count("$$") % 2 == 0


def test_graph_returns_a_digraph_that_displays_itself(seed):
    import graphviz

    graph = seed.graph("backward", highlight="b2")
    assert isinstance(graph, graphviz.Digraph)
    assert hasattr(graph, "_repr_mimebundle_")

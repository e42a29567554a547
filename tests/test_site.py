"""`a3bench report --format html`: the static site, on disk and in a real browser.

The browser tests drive Debian's headless Chromium through chromedriver (tests/webdriver.py)
and skip where either is missing — except in CI, which installs both and sets
A3BENCH_REQUIRE_BROWSER=1 so that a missing browser fails instead."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.schema import AttackRecord, Flag, write_record
from a3bench.io import write_json_atomic
from a3bench.flags import all_flags
from a3bench.report.generate import generate_report
from a3bench.report.leaderboard import COLUMNS
from tests.test_report import make_record, write
from tests.webdriver import Browser, find_browser, require_browser

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "tests" / "data" / "robustbench_model_info"
runner = CliRunner()

HOSTILE_FILE = "x](javascript:alert(1)).json"
HOSTILE_TEXT = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def png_bytes(w: int = 4, h: int = 3) -> bytes:
    """A real (tiny, grey) PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x80" * w for _ in range(h))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def site_inputs(tmp_path_factory) -> Path:
    """cifar10 Linf 8/255 records (one hostile), a sweep with a plot, and a sweep whose plot
    points outside its folder."""
    root = tmp_path_factory.mktemp("site") / "results"
    write(root, "strong", make_record("strong", 85.0, 55.0, reported=60.0, link="https://example.org/strong-paper"))
    write(root, "weak", make_record("weak", 95.0, 10.0))
    write(root, "masked", make_record("masked", 80.0, 70.0, flags=[Flag("zero-gradients", "warning", "12 % zero gradients", 0.12)],
                                      verdict="suspicious", verdict_reason="zero gradients"))
    hostile = make_record("hostile", 88.0, 30.0, link="javascript:alert(document.domain)", title=HOSTILE_TEXT, footnote=HOSTILE_TEXT,
                          authors=HOSTILE_TEXT, flags=[Flag(HOSTILE_TEXT, "error", HOSTILE_TEXT)], verdict="unreliable")
    hostile.per_attack.append(AttackRecord("<svg onload=alert(3)>", 30.0, broken=0, n_attacked=30))
    write_record(root / "cifar10" / "Linf" / HOSTILE_FILE, hostile)
    folder = root / "cifar10" / "Linf"
    (folder / "strong.sweep.png").write_bytes(png_bytes())
    write_json_atomic(folder / "strong.sweep.json", {"schema_version": 1, "model": "strong", "dataset": "cifar10", "norm": "Linf",
                                                     "eps": [0.0, 8 / 255], "curves": {"pgd-20": [85.0, 55.0]}, "plot": "strong.sweep.png", "flags": [],
                                                     "n_examples": 100})
    secret = root.parent / "secret.png"
    secret.write_bytes(png_bytes())
    write_json_atomic(folder / "weak.sweep.json", {"schema_version": 1, "model": "weak", "dataset": "cifar10", "norm": "Linf",
                                                   "eps": [0.0, 8 / 255], "curves": {"pgd-20": [95.0, 10.0]}, "plot": "../../../secret.png", "flags": [],
                                                   "n_examples": 100})
    return root


@pytest.fixture(scope="module")
def site(site_inputs: Path) -> Path:
    out = site_inputs.parent / "site"
    res = runner.invoke(app, ["report", str(site_inputs), "--format", "html", "--out", str(out), "--robustbench", str(PUBLISHED)])
    assert res.exit_code == 0, res.output
    return out


# --------------------------------------------------------------------------- on disk


def test_site_layout(site: Path):
    pages = sorted(p.name for p in (site / "models").iterdir())
    assert "cifar10_Linf_strong.html" in pages and "cifar10_Linf_masked.html" in pages and len(pages) == 4
    assert [p.name for p in (site / "img").iterdir()] == ["cifar10_Linf_strong.sweep.png"]  # the secret was not copied
    assert (site / "img" / "cifar10_Linf_strong.sweep.png").read_bytes() == png_bytes()
    assert not list(site.rglob("*.md")) and not list(site.rglob("*.json"))


def test_pages_load_nothing_from_outside(site: Path):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "Content-Security-Policy" in text and "default-src 'none'" in text
        assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=\"(https?:)?//", text), page
        assert not re.search(r"(href|src)\s*=\s*\"\s*javascript", text, re.IGNORECASE), page  # the hostile name is only text
        assert "<script>alert" not in text and "<img src=x" not in text and "<svg onload" not in text


def test_index_tables(site: Path):
    index = (site / "index.html").read_text()
    assert index.count('<table class="board"') == 1  # one (dataset, threat model): cifar10 Linf 8/255
    assert "4 model(s) measured here on 100 test examples each; 99 published by RobustBench (not measured here; 10,000 examples)." in index
    assert '<tr class="published" data-model="Carmon2019Unlabeled">' in index
    assert "verdict-unreliable" in index and "verdict-suspicious" in index and "verdict-reliable" in index


# --------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def browser():
    found = find_browser()
    if found is None:
        if require_browser():
            pytest.fail("A3BENCH_REQUIRE_BROWSER is set but chromium/chromedriver are missing (.ci/install installs them)")
        pytest.skip("no headless browser: apt-get install chromium chromium-driver")
    b = Browser(*found)
    yield b
    b.quit()


ROWS = "return Array.from(document.querySelectorAll('#board-0 tbody tr')).filter(r => !r.hidden).map(r => r.dataset.model);"
WORST_COL = COLUMNS.index("Worst case (%) [95% CI]")
WORST = f"return Array.from(document.querySelectorAll('#board-0 tbody tr')).map(r => parseFloat(r.cells[{WORST_COL}].dataset.value));"


def test_page_renders(browser, site: Path):
    browser.get((site / "index.html").as_uri())
    assert browser.run("return document.title") == "a3bench leaderboard"
    assert browser.run("return document.querySelectorAll('table.board').length") == 1
    rows = browser.run(ROWS)
    assert len(rows) == 4 + 99 and rows[0] == "Bartoldson2024Adversarial_WRN-94-16"  # RobustBench's best, 73.71 %
    assert [r for r in rows if r in ("masked", "strong", "weak") or "javascript" in r] == ["masked", "strong", "x](javascript:alert(1))", "weak"]
    # The table is laid out (not hidden, not zero-sized) and the verdicts are coloured.
    assert browser.run("return document.querySelector('#board-0').getBoundingClientRect().height") > 100
    colour = browser.run("return getComputedStyle(document.querySelector('tr.measured .verdict-unreliable')).backgroundColor")
    assert colour == "rgb(207, 34, 46)"
    assert browser.run("return document.querySelectorAll('a[href^=\"javascript\" i]').length") == 0


def test_sorting_by_worst_case_reorders_rows(browser, site: Path):
    browser.get((site / "index.html").as_uri())
    before = browser.run(ROWS)
    worst = browser.run(WORST)
    assert worst == sorted(worst, reverse=True)  # ranked, best first
    header = f"#board-0 thead th:nth-child({WORST_COL + 1})"
    browser.click(header + " button")
    after = browser.run(WORST)
    assert after == sorted(worst) and browser.run(ROWS) != before
    assert browser.run(f"return document.querySelector('{header}').getAttribute('aria-sort')") == "ascending"
    browser.click(header + " button")
    assert browser.run(WORST) == sorted(worst, reverse=True)
    browser.click("#board-0 thead th:nth-child(1) button")  # by rank (best possible rank), ascending
    ranks = browser.run("return Array.from(document.querySelectorAll('#board-0 tbody tr')).map(r => parseInt(r.cells[0].dataset.value));")
    assert ranks == sorted(ranks) and ranks[0] == 1


def test_search_filters_rows(browser, site: Path):
    browser.get((site / "index.html").as_uri())
    browser.type("#search", "masked")
    assert browser.run(ROWS) == ["masked"]
    assert browser.run("return document.getElementById('board-0-shown').textContent") == "1 of 103 rows match"
    browser.clear("#search")
    browser.type("#search", "NeurIPS 2019")  # a published row's venue
    shown = browser.run(ROWS)
    assert "Carmon2019Unlabeled" in shown and "masked" not in shown and 0 < len(shown) < 103
    browser.clear("#search")
    browser.type("#search", " ")
    assert len(browser.run(ROWS)) == 103


def _links(browser) -> list[dict]:
    return browser.run(
        "return Array.from(document.querySelectorAll('a[href], img[src]')).map(a => ({tag: a.tagName, "
        "url: a.href || a.src, raw: a.getAttribute('href') || a.getAttribute('src'), cls: a.className}));"
    )


def test_every_link_resolves_inside_the_site(browser, site: Path):
    """Crawl from the index: every link and image is a file of the site (and every #anchor an
    element of its page); the only links out are papers' http(s) links."""
    root = site.resolve()
    todo, seen, external = [root / "index.html"], set(), set()
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        browser.get(page.as_uri())
        for link in _links(browser):
            parts = urlsplit(link["url"])
            if parts.scheme in ("http", "https"):
                assert link["tag"] == "A" and "ext" in link["cls"], link
                external.add(link["url"])
                continue
            assert parts.scheme == "file", link
            target = Path(unquote(parts.path)).resolve()
            assert target.is_relative_to(root) and target.is_file(), f"{page.name}: {link['raw']} -> {target}"
            if parts.fragment:
                browser.get(target.as_uri())
                assert browser.run("return !!document.getElementById(arguments[0])", unquote(parts.fragment)), link
                browser.get(page.as_uri())
            if target.suffix == ".html":
                todo.append(target)
    assert {p.name for p in seen} >= {"index.html", "cifar10_Linf_strong.html", "cifar10_Linf_masked.html", "zero-gradients.html"}
    assert len([p for p in seen if p.parent.name == "models"]) == 4
    assert {p.name for p in seen if p.parent.name == "flags"} == {"index.html"} | {f"{name}.html" for name in all_flags()}
    assert "https://example.org/strong-paper" in external
    assert not any("javascript" in u.lower() for u in external)


def test_model_page(browser, site: Path):
    browser.get((site / "models" / "cifar10_Linf_masked.html").as_uri())
    text = browser.run("return document.body.innerText")
    assert "Per-attack results" in text and "Which attack broke how many examples" in text
    assert "zero-gradients" in text and "What it means:" in text and "check_zero_gradients" in text  # explained from docs/diagnostics.md
    assert "Provenance" in text
    browser.get((site / "models" / "cifar10_Linf_strong.html").as_uri())
    assert browser.run("var i = document.querySelector('img.curve'); return i.complete && i.naturalWidth") == 4  # the copied plot loads


def test_hostile_page_shows_text_and_runs_nothing(browser, site: Path):
    page = next(p for p in (site / "models").iterdir() if "javascript" in p.name)
    assert "](" not in page.name  # the file name is a safe name
    browser.get(page.as_uri())
    text = browser.run("return document.body.innerText")
    assert HOSTILE_TEXT in text and "<svg onload=alert(3)>" in text  # shown, not run
    assert browser.run("return document.querySelectorAll('script').length") == 0
    assert browser.run("return document.querySelectorAll('img:not(.curve), svg').length") == 0
    assert browser.run("return document.querySelectorAll('a[href^=\"javascript\" i]').length") == 0


def test_site_out_as_html_file(site_inputs: Path, tmp_path: Path):
    """--out site/board.html: the folder site/, that file as the index, model pages linking back to it."""
    out = generate_report([site_inputs], tmp_path / "s" / "board.html", "html")
    assert out.leaderboard == tmp_path / "s" / "board.html" and out.leaderboard.is_file()
    page = (tmp_path / "s" / "models" / "cifar10_Linf_strong.html").read_text()
    assert 'href="../board.html"' in page and "index.html" not in page


# --------------------------------------------------------------------------- issue 22: strength, filters, flag pages (in the browser)


@pytest.fixture(scope="module")
def strength_site(tmp_path_factory) -> Path:
    """Two full evaluations (one unreliable), a PGD-20-only one that an old run called
    reliable, and an audit of the honest model's evaluation with a flag of its own."""
    from a3bench.flags import BINARIZATION_TEST_FAILED
    from tests.test_report import write_audit_file

    root = tmp_path_factory.mktemp("strength") / "results"
    honest = write(root, "honest", make_record("honest", 90.0, 50.0, model={"spec": "honest", "name": "m", "sha256": "a" * 64}))
    write_audit_file(honest.with_name("honest.audit.json"), flags=[BINARIZATION_TEST_FAILED("missed known examples", value=42.0)])
    write(root, "masked", make_record("masked", 90.0, 60.0, flags=[Flag("adaptive-beats-autoattack", "error", "m")], verdict="unreliable"))
    write(root, "quick", make_record("quick", 90.0, 76.0, weak=True, verdict="reliable"))
    out = root.parent / "site"
    res = runner.invoke(app, ["report", str(root), "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _rows(browser, table: str) -> list[str]:
    return browser.run(f"return Array.from(document.querySelectorAll('#{table} tbody tr')).filter(r => !r.hidden).map(r => r.dataset.model);")


def test_weaker_evaluation_is_listed_apart_and_never_green(browser, strength_site: Path):
    browser.get((strength_site / "index.html").as_uri())
    assert _rows(browser, "board-0") == ["masked", "honest"] and _rows(browser, "board-0-apart") == ["quick"]
    heads = browser.run("return Array.from(document.querySelectorAll('#board-0 thead th')).map(th => th.textContent.trim());")
    assert heads == COLUMNS  # suite and n per row
    cells = browser.run("return Array.from(document.querySelector('#board-0-apart tbody tr').cells).map(c => c.textContent.trim());")
    row = dict(zip(COLUMNS, cells))
    assert row["Suite"] == "quick (no full AA)" and row["n"] == "100" and row["Rank"] == "—" and row["Verdict"] == "not-evaluated-fully"
    green = browser.run("return getComputedStyle(document.querySelector('tr.measured .verdict-reliable')).backgroundColor")
    weak = browser.run("return getComputedStyle(document.querySelector('#board-0-apart .verdict')).backgroundColor")
    assert green == "rgb(26, 127, 55)" and weak != green
    # The audit of the honest model's own evaluation: its rate and its flag, marked as the audit's.
    honest = browser.run("return Array.from(document.querySelector('#board-0 tr[data-model=\"honest\"]').cells).map(c => c.textContent.trim());")
    assert dict(zip(COLUMNS, honest))["Audit (%)"] == "42.0" and "binarization-test-failed (audit)" in dict(zip(COLUMNS, honest))["Flags"]


def test_filter_matches_words_not_parts_of_words(browser, strength_site: Path):
    """Issue 22 item 13: "reliable" must not find "unreliable"."""
    browser.get((strength_site / "index.html").as_uri())
    browser.type("#search", "reliable")
    assert _rows(browser, "board-0") == ["honest"] and _rows(browser, "board-0-apart") == []
    browser.clear("#search")
    browser.type("#search", "unreliable")
    assert _rows(browser, "board-0") == ["masked"]
    browser.clear("#search")
    browser.type("#search", "hon")  # a word being typed still finds its row
    assert _rows(browser, "board-0") == ["honest"]


def test_flag_pages_render_the_docs_tables_as_tables(browser, strength_site: Path):
    """Issue 22 item 11: a page per flag, from the docs shipped with a3bench; tables are tables."""
    browser.get((strength_site / "flags" / "gradient-inconsistent.html").as_uri())
    text = browser.run("return document.body.innerText")
    assert "gradient-inconsistent" in text and "finite difference" in text and "What to do:" in text
    assert "|---" not in text and "| kind" not in text
    heads = browser.run("return Array.from(document.querySelectorAll('table thead th')).map(th => th.textContent);")
    assert heads == ["kind", "what the check saw", "typical cause"]
    assert browser.run("return document.querySelectorAll('table tbody tr').length") == 5
    browser.get((strength_site / "flags" / "index.html").as_uri())
    listed = browser.run("return Array.from(document.querySelectorAll('tbody tr td:first-child')).map(td => td.textContent);")
    assert listed == list(all_flags())


def test_site_of_the_committed_results(tmp_path: Path):
    """The records the project ships build a site: a page per record, the sweep's plot copied."""
    from a3bench.report.load import find_json

    records = find_json([REPO / "results"])
    out = generate_report([REPO / "results"], tmp_path / "site", "html")
    assert len(out.reports) == len(records) >= 1
    index = (tmp_path / "site" / "index.html").read_text()
    assert all(f'data-model="{p.stem}"' in index for p in records)
    assert list((tmp_path / "site" / "img").glob("*.sweep.png"))

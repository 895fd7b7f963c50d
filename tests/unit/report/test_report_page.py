# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The landing page (roles/lab_report/templates/index.html.j2) in headless Chromium: it renders, every
service card has its link or the reason there is none, the layers table has its rows, values are
escaped, and nothing overflows at a laptop and a phone width. Screenshots are saved under the test's
tmp dir (their paths are printed)."""

import re
import shutil
from pathlib import Path

import jinja2
import pytest

from ansible_collections.ailab.cluster.plugins.filter.lab_report import lab_report_model
from unit.report.report_inputs import EXAMPLE_GROUPS, EXAMPLE_HOSTVARS, ROOT, example_settings

CHROMIUM = "/usr/bin/chromium"
TEMPLATE = ROOT / "roles" / "lab_report" / "templates" / "index.html.j2"
VIEWPORTS = {"laptop": (1366, 768), "phone": (390, 844)}
LAYERS = [{"layer": "Proxmox VE", "target": "simulator", "result": "ok", "seconds": 41.2},
          {"layer": "Nodes", "target": "containers", "result": "ok", "seconds": 95, "detail": "debian:12, debian:13"},
          {"layer": "Kubernetes (kubeadm)", "target": "not run", "result": "needs systemd and a kernel"},
          {"layer": "JupyterHub", "target": "export", "result": "validated", "detail": "/srv/export/example-lab"}]
HOSTILE = "<script>document.title='pwned'</script><b>bold</b>"


def render(model):
    """The page as ansible.builtin.template renders it: Jinja2 without autoescape (Ansible ignores it), trim_blocks."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, autoescape=False)
    return env.get_template(TEMPLATE.name).render(report=model)


def test_every_value_of_the_template_is_escaped():
    expressions = re.findall(r"\{\{(.*?)\}\}", TEMPLATE.read_text(), re.S)
    assert len(expressions) > 30
    assert [e for e in expressions if not e.rstrip().endswith("| e")] == []


@pytest.fixture(scope="module")
def model():
    settings = example_settings(grafana_ip="192.168.10.205")
    settings["layers"] = LAYERS
    settings["tenants"][0]["description"] = HOSTILE
    return lab_report_model(settings, EXAMPLE_GROUPS, EXAMPLE_HOSTVARS)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; make system installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not in the venv (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "index.html"
    path.write_text(render(model), encoding="utf-8")
    return path


def _open(browser, page_file, viewport):
    width, height = VIEWPORTS[viewport]
    page = browser.new_page(viewport={"width": width, "height": height})
    # The page is self-contained: any request but the file itself is a defect (air-gapped labs).
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    return page, [url for url in requests if url != page_file.as_uri()]


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_page_renders_every_card_and_nothing_overflows(browser, page_file, model, viewport, tmp_path):
    page, other_requests = _open(browser, page_file, viewport)
    try:
        assert page.title() == "example-lab \u2014 lab report"
        assert other_requests == []
        cards = page.locator("article.card")
        assert cards.count() == len(model["services"]) == 5
        for card in model["services"]:
            element = page.locator(f'article.card[data-service="{card["key"]}"]')
            assert element.locator("h3").inner_text() == card["name"]
            assert element.locator(".status").inner_text() == card["status"]
            if card["url"]:
                assert element.locator("a.link").get_attribute("href") == card["url"]
                assert element.locator("a.link").is_visible()
            else:
                assert element.locator("a").count() == 0
                # Commands in backticks are shown as code.
                assert element.locator(".why").inner_text() == card["why"].replace("`", "")
                assert element.locator(".why code").count() == card["why"].count("`") // 2
        # The layers table: one row per measured layer, as passed.
        rows = page.locator("#layers-table tbody tr")
        assert rows.count() == len(LAYERS)
        assert rows.nth(0).locator("td").all_inner_texts() == ["Proxmox VE", "simulator", "ok", "41.2", ""]
        assert page.locator("#layers-derived").count() == 0
        # Nothing wider than the viewport: neither the document nor any card.
        sizes = page.evaluate("""() => ({
            scroll: document.scrollingElement.scrollWidth, client: document.scrollingElement.clientWidth,
            cards: [...document.querySelectorAll('article.card')].map(c => c.getBoundingClientRect().right),
            width: window.innerWidth})""")
        assert sizes["scroll"] <= sizes["client"], sizes
        assert max(sizes["cards"]) <= sizes["width"], sizes
        shot = tmp_path / f"report-{viewport}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10000
    finally:
        page.close()


def test_values_are_escaped(browser, page_file):
    page, _requests = _open(browser, page_file, "laptop")
    try:
        # The tenant description is shown as text, not run or parsed as markup.
        assert page.title() == "example-lab \u2014 lab report"
        assert page.locator("#tenants ~ .table-wrap b").count() == 0
        assert HOSTILE in page.locator("#tenants ~ .table-wrap").first.inner_text()
    finally:
        page.close()


def test_derived_layers_are_marked(browser, tmp_path):
    settings = example_settings()
    path = tmp_path / "index.html"
    path.write_text(render(lab_report_model(settings, EXAMPLE_GROUPS)), encoding="utf-8")
    page, _requests = _open(browser, path, "phone")
    try:
        assert page.locator("#layers-derived").is_visible()
        assert page.locator("#mode").inner_text() == "Export mode: written to /srv/export/example-lab, not deployed"
        assert page.locator('article.card[data-service="jupyterhub"] .why').inner_text().startswith(
            "LoadBalancer IP assigned at install")
    finally:
        page.close()

"""The validation report: a section per score from a real training run, and the page checked in
headless Chromium (console errors, undecoded or blank images), with a screenshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scorecast.cli import main
from scorecast.training.report import SECTIONS
from scorecast.training.simulate.b2b import B2BConfig, simulate_b2b, write_b2b
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
from scorecast.training.train import train

# Injected into a copy of the page: records errors (script errors, console.error, resource
# errors), then on load checks every <img> decoded and is not blank (at least 1 % of its pixels
# not near-white), and writes the verdict into the DOM for --dump-dom to carry out.
_PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && e.target.alt) || 'resource')), true);
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); __consoleError(...a); };
</script>"""
_PROBE_BODY = """<script>
window.addEventListener('load', () => {
  const images = [];
  for (const img of document.images) {
    const row = {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, ink: 0};
    if (img.complete && img.naturalWidth > 0) {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) ink++;
      row.ink = ink / (c.width * c.height);
    }
    images.push(row);
  }
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({errors: window.__errors, images, sections: document.querySelectorAll('section').length});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """Every score trained once: a small retail base (orders, e-mail, web, products) and a B2B base."""
    root = tmp_path_factory.mktemp("report")
    write_base(simulate_base(SimulationConfig(n_contacts=6_000, seed=7)), root / "base")
    write_b2b(simulate_b2b(B2BConfig(n_contacts=4_000, seed=0)), root / "b2b")
    retail = [s for s in SECTIONS if s != "lead"]
    train(root / "base", root / "models", scores=retail)
    train(root / "b2b", root / "models", scores=["lead"])
    return root / "models"


@pytest.fixture(scope="module")
def page(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    assert main(["report", "--models", str(models), "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_a_section_per_score_with_its_headline(page: Path) -> None:
    html = page.read_text()
    sections = re.findall(r'<section id="([a-z_]+)">', html)
    assert sections == list(SECTIONS)  # every score, in the registry's order
    headlines = re.findall(r'<p class="headline">([^<]+)</p>', html)
    assert len(headlines) == len(SECTIONS) and [h for h in headlines if " vs " not in h] == []
    assert "retrain to draw it" not in html  # training recorded every chart's data
    for score, at_least in {"rfm": 1, "affinity": 4, "cross_sell": 2, "clv": 2, "churn": 1, "recommendations": 2,
                            "promo_appetence": 2, "engagement": 2, "pressure": 1, "interests": 1, "web_heat": 2,
                            "segments": 1, "lead": 4}.items():  # fmt: skip
        part = html.split(f'<section id="{score}">', 1)[1].split("</section>", 1)[0]
        assert part.count("data:image/png;base64,") >= at_least, score


@pytest.mark.slow
def test_one_score_and_an_unknown_one(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "clv.html"
    assert main(["report", "--models", str(models), "--score", "clv", "--out", str(out)]) == 0
    assert re.findall(r'<section id="([a-z_]+)">', out.read_text()) == ["clv"]
    assert main(["report", "--models", str(models), "--score", "nope", "--out", str(out)]) == 2


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("SCORECAST_REQUIRE_CHROMIUM"):
            pytest.fail("SCORECAST_REQUIRE_CHROMIUM is set but chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); CI installs it and sets SCORECAST_REQUIRE_CHROMIUM")
    return path


@pytest.mark.slow
def test_page_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    """No console or resource error, every image decoded and drawn, and a screenshot of the page."""
    chromium = _chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + _PROBE_HEAD, 1).replace("</body>", _PROBE_BODY + "</body>", 1))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--virtual-time-budget=10000"]  # fmt: skip
    run = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the probe did not run; stderr: {run.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert probe["errors"] == []
    assert [line for line in run.stderr.splitlines() if ":CONSOLE(" in line] == []
    assert probe["sections"] == len(SECTIONS)
    assert len(probe["images"]) >= 20
    for image in probe["images"]:
        assert image["width"] > 100 and image["height"] > 100, image
        assert image["ink"] > 0.01, f"blank chart: {image}"

    shot = Path(os.environ.get("SCORECAST_SCREENSHOT_DIR", tmp_path)) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([*flags, "--window-size=1200,16000", f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (16000, 1200)
    rows_with_ink = (pixels < 200).any(axis=1).mean()
    assert rows_with_ink > 0.5, f"the screenshot is mostly blank ({rows_with_ink:.0%} of rows drawn)"
    print(f"screenshot: {shot}")

"""Screenshot of the review page (`pcle prompts serve`) in headless Chromium, for the docs.

    python tools/review_screenshot.py --out docs/review_page.png prompts/nw-ucla.jsonl EDITED.jsonl \
        [--query 'q=pick'] [--serve-args '--encoder none'] [--height 1100] [--regenerate CLASS_ID]

Starts the page on a free port exactly as `pcle prompts serve` does, opens it (with the query string,
e.g. a filter), waits for it, and saves a PNG of the window. `--regenerate` starts the test LLM server
(knowledge_engine/testing/fake_server.py), serves with it as the backend and clicks "regenerate" on that
class of the last corpus first, so the picture shows a proposal. Needs chromium, chromium-driver, selenium.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge_engine.testing.browser import headless_chromium, missing, start_review  # noqa: E402
from knowledge_engine.testing.fake_server import FakeLLMServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--query", default="", help="query string of the page, e.g. 'check=any'")
    ap.add_argument("--serve-args", default="", help="more options for `serve`, e.g. '--encoder none'")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--regenerate", type=int, default=None, metavar="CLASS_ID",
                    help="show a proposal for this class of the last corpus (from the test LLM server)")
    args = ap.parse_args()
    if (why := missing()) is not None:
        sys.exit(f"review_screenshot: {why}")
    llm = FakeLLMServer().start() if args.regenerate is not None else None
    cache = Path(tempfile.mkdtemp(prefix="review-screenshot-")) / "cache.jsonl"  # nothing in prompts/cache
    extra = ["--base-url", llm.url, "--model", "fake-model", "--cache", str(cache)] if llm else []
    proc, url = start_review(args.corpora, *shlex.split(args.serve_args), *extra)
    driver = headless_chromium(args.width, args.height)
    try:
        driver.get(url + (f"?{args.query}" if args.query else ""))
        driver.find_element("id", "rows")
        if args.regenerate is not None:
            _propose(driver, len(args.corpora) - 1, args.regenerate)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
        if llm is not None:
            llm.stop()
    print(f"wrote {args.out}")


def _propose(driver, corpus: int, class_id: int) -> None:
    """Click the class's "regenerate" and wait for its proposal."""
    from selenium.webdriver.support.ui import WebDriverWait

    css = f'.meta button.regenerate[data-corpus="{corpus}"][data-class="{class_id}"]'
    driver.find_element("css selector", css).click()
    proposal = f"#proposal-{corpus}-{class_id} .proposal"
    WebDriverWait(driver, 120).until(lambda d: d.find_elements("css selector", proposal))


if __name__ == "__main__":
    main()

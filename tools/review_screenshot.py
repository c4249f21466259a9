"""Screenshot of the review page (`pcle prompts serve`) in headless Chromium, for the docs.

    python tools/review_screenshot.py --out docs/review_page.png prompts/nw-ucla.jsonl EDITED.jsonl \
        [--query 'q=pick'] [--serve-args '--encoder none'] [--height 1100]

Starts the page on a free port exactly as `pcle prompts serve` does, opens it (with the query string,
e.g. a filter), waits for it, and saves a PNG of the window. Needs chromium, chromium-driver, selenium.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge_engine.testing.browser import headless_chromium, missing, start_review  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--query", default="", help="query string of the page, e.g. 'check=any'")
    ap.add_argument("--serve-args", default="", help="more options for `serve`, e.g. '--encoder none'")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()
    if (why := missing()) is not None:
        sys.exit(f"review_screenshot: {why}")
    proc, url = start_review(args.corpora, *shlex.split(args.serve_args))
    driver = headless_chromium(args.width, args.height)
    try:
        driver.get(url + (f"?{args.query}" if args.query else ""))
        driver.find_element("id", "rows")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""axe-core over the pages the browser tests visit: ``axe_check(page, context)`` runs the WCAG 2.0 and 2.1
A and AA rules on the page as it is now, keeps the full results as JSON under ``test-artifacts/axe/``
(``<test>-<context>.json``, which CI keeps with the screenshots) and fails, listing rule, impact, the
elements' selectors and the rule's help, when a violation is serious or critical.

Why axe in the browser tests rather than a linter over the templates: contrast, names of controls and
landmarks depend on the CSS and on what the page shows once rendered with real data.

How axe gets in despite the pages' Content-Security-Policy (``script-src 'self'``, no ``'unsafe-eval'``):
the axe-core bundled with axe-playwright-python is evaluated with ``page.evaluate``, which Playwright sends
over the DevTools protocol (``Runtime.evaluate``/``callFunctionOn``); the page's CSP governs what the page
loads and evals, not what the debugger evaluates. :func:`inject` still checks that ``axe`` exists afterwards
and says so plainly if a policy ever does stop it.

Moderate and minor violations are in the JSON and printed, but do not fail: the bar is zero serious or
critical ones (missing names of controls, contrast under 4.5:1, ...).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from axe_playwright_python.base import AXE_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "axe"
#: the rule sets checked: WCAG 2.0 and 2.1, levels A and AA
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
#: impacts that fail a test
FAILING = ("serious", "critical")


class AccessibilityError(AssertionError):
    """A page has serious or critical axe violations (the message lists them)."""


def inject(page: Any) -> None:
    """Put axe-core into the page (once per document)."""
    if page.evaluate("typeof window.axe === 'object'"):
        return
    page.evaluate(AXE_SCRIPT)
    if not page.evaluate("typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        raise AccessibilityError(f"axe-core could not be injected into {page.url} (a Content-Security-Policy "
                                 "that blocks evaluation by the DevTools protocol?)")


def run_axe(page: Any) -> dict[str, Any]:
    """The full axe results (violations, passes, incomplete, inapplicable) of the page as it is now."""
    inject(page)
    options = {"runOnly": {"type": "tag", "values": list(TAGS)}}
    results: dict[str, Any] = page.evaluate("options => window.axe.run(document, options)", options)
    return results


def current_test() -> str:
    """The running test's name (with its parameters), as pytest names it in ``PYTEST_CURRENT_TEST``."""
    running = os.environ.get("PYTEST_CURRENT_TEST", "outside-a-test")
    return running.split("::")[-1].rsplit(" (", 1)[0]


def _file_name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", "-".join(p for p in parts if p))[:180]


def save(results: dict[str, Any], context: str, test: str | None = None) -> Path:
    """Write the results as ``test-artifacts/axe/<test>-<context>.json``; its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{_file_name(test or current_test(), context)}.json"
    path.write_text(json.dumps(results, indent=1))
    return path


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violated rule: id, impact, help and its URL, then each element's selector and
    what axe says is wrong with it."""
    lines: list[str] = []
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v.get('help')} <{v.get('helpUrl', '')}>")
        for node in v.get("nodes", []):
            target = " ".join(str(t) for t in node.get("target", []))
            summary = " ".join(str(node.get("failureSummary") or "").split())
            lines.append(f"    {target}" + (f"  -- {summary[:300]}" if summary else ""))
    return "\n".join(lines)


def serious(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The violations that fail a test."""
    return [v for v in results.get("violations", []) if v.get("impact") in FAILING]


def axe_check(page: Any, context: str, test: str | None = None) -> dict[str, Any]:
    """Run axe on ``page`` now, keep the results, and fail on any serious or critical violation.

    ``context`` names the step (``end`` for the page a test ends on); ``test`` defaults to the running
    test's name. Returns the results for tests that look further."""
    __tracebackhide__ = True  # the failure is the list of violations, not this helper's frames
    results = run_axe(page)
    path = save(results, context, test)
    failing = serious(results)
    others = [v for v in results.get("violations", []) if v not in failing]
    if others:
        print(f"axe: minor or moderate violations on {page.url} ({context}):\n{describe(others)}")
    if failing:
        raise AccessibilityError(
            f"axe: {len(failing)} serious or critical accessibility violation(s) on {page.url} ({context}); "
            f"full results in {path.relative_to(ROOT)}:\n{describe(failing)}")
    return results

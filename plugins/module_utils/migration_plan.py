# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What both migration modules do with the pending SQL before applying it: review and classify.

One place so that alembic_migrate and prisma_migrate report findings, classification and
the SQL preview identically, and `review: fail` stops both before anything runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.maestro.deploy.plugins.module_utils.sql_review import classify_migration, review


def plan(pending, review_mode="warn"):
    """(findings, classification, sql) for [(name, sql, has_downgrade)] in order."""
    findings, classification, sql = [], [], []
    for name, text, has_downgrade in pending:
        mine = review(text, name)
        if review_mode != "off":
            findings.extend(mine)
        cls = classify_migration(text, has_downgrade=has_downgrade, findings=mine)
        classification.append(dict(migration=name, reasons=cls["reasons"], **{"class": cls["class"]}))
        sql.append(dict(migration=name, sql=text))
    return findings, classification, sql


def finding_text(f):
    return "%s: %s [%s] %s" % (f["migration"], " ".join(f["statement"].split())[:200], f["rule"], f["why"])


def review_pending(module, result, pending):
    """Fill findings/classification/sql in `result`; warn per finding, or fail with review=fail."""
    mode = module.params["review"]
    findings, classification, sql = plan(pending, mode)
    result.update(findings=findings, classification=classification)
    if module.params.get("preview") or module.check_mode:
        result["sql"] = sql
    if findings and mode == "fail":
        result["pending"] = [name for name, _sql, _dg in pending]
        module.fail_json(msg="review=fail: %d finding(s) in the pending migrations, nothing was applied: %s"
                         % (len(findings), "; ".join(finding_text(f) for f in findings)), **result)
    if mode == "warn":
        for f in findings:
            module.warn("migration review: " + finding_text(f))
    return findings

# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review and classify migration SQL before it runs (PostgreSQL dialect).

Why a scanner of our own: migrations arrive as plain SQL (Prisma's migration.sql, Alembic's
offline `--sql` output), and a regular expression over the raw text is fooled by a `DROP`
inside a comment or a string literal. `split_statements` therefore lexes the text first:
line and (nested) block comments, '' strings (E'' with backslash escapes), "quoted"
identifiers, $tag$ dollar quoting (DO blocks and function bodies) and BEGIN ATOMIC bodies.
Each statement keeps its original text (what a person reads in a finding) and a `code` form
with comments removed and literal contents blanked (what the rules match).

Two consumers:
  - `review(sql, migration)` -> findings: {migration, statement, rule, why, data_loss, line}
    for the risks the manual procedure asks people to look for.
  - `classify(sql)` -> 'additive' | 'destructive' (and `classify_with_reasons`): whether the
    previous release's code can keep running on the new schema. Anything not understood is
    destructive. 'reversible' needs knowledge of a downgrade, so the caller decides it with
    `classify_migration(sql, has_downgrade=...)`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

ADDITIVE = "additive"
REVERSIBLE = "reversible"
DESTRUCTIVE = "destructive"

# Rules whose statements destroy data already written (a downgrade cannot bring it back).
DATA_LOSS_RULES = frozenset(["drop-table", "drop-column", "deletes-data", "alter-column-type", "do-block"])

WHY = {
    "drop-table": "DROP TABLE deletes the table and every row in it; the previous release still reads it",
    "drop-column": "DROP COLUMN deletes the column's data for every row; the previous release still reads it",
    "deletes-data": "deletes rows or whole objects (TRUNCATE, DELETE, DROP SCHEMA ...); a rollback cannot bring "
                    "them back",
    "not-null-without-default": "NOT NULL without a DEFAULT fails on existing rows holding NULL (or any row, for a "
                                "new column), scans the table under an ACCESS EXCLUSIVE lock, and the previous "
                                "release's INSERTs that omit the column fail",
    "index-without-concurrently": "CREATE INDEX without CONCURRENTLY blocks every write to the table while the index "
                                  "builds; on a large table that is an outage",
    "rename": "a rename breaks the running (previous) release, which still uses the old name",
    "alter-column-type": "ALTER COLUMN ... TYPE rewrites the table under an ACCESS EXCLUSIVE lock and can fail on, "
                         "or silently change, existing values",
    "foreign-key-without-not-valid": "a new FOREIGN KEY without NOT VALID checks every existing row while locking "
                                     "both tables; add it NOT VALID, then VALIDATE CONSTRAINT separately",
    "do-block": "procedural code (DO block) cannot be reviewed automatically: read it by hand",
}

_IDENT = r'(?:"[^"]*"|[A-Za-z_][\w$]*)'
_QNAME = _IDENT + r"(?:\s*\.\s*" + _IDENT + r")*"
_NEUTRAL = re.compile(r"^(BEGIN|COMMIT|END|START\s+TRANSACTION|SET|RESET|ROLLBACK)\b", re.I)


class Statement:
    """One SQL statement: `text` as written (comments included), `code` for matching, 1-based `line`."""

    def __init__(self, text, code, line):
        self.text = text
        self.code = code
        self.line = line

    def __repr__(self):
        return "Statement(%r)" % self.text


def _dollar_tag(sql, i):
    """The $tag$ opening at i, or None ($1 parameters and identifiers with $ are not tags)."""
    m = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$").match(sql, i)
    if not m:
        return None
    if i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$"):
        return None
    return m.group(0)


def split_statements(sql):
    """Split SQL into Statements at top-level semicolons; comments and literals never split or match."""
    statements = []
    text_start = 0
    code = []
    line = 1
    stmt_line = None
    i = 0
    n = len(sql)

    def flush(end):
        body = "".join(code).strip()
        text = sql[text_start:end].strip()
        if body:
            statements.append(Statement(_strip_comments_edges(text), " ".join(body.split()), stmt_line or 1))

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            code.append(" ")
            i = end
            continue
        if c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += sql.count("\n", i, j)
            code.append(" ")
            i = j
            continue
        if stmt_line is None and not c.isspace() and c != ";":
            stmt_line = line
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            line += sql.count("\n", i, j)
            code.append("'?'")
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n:
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            ident = sql[i + 1:j].replace('""', '"')
            code.append('"' + re.sub(r"[^\w.]", "_", ident) + '"')
            line += sql.count("\n", i, j)
            i = j + 1
            continue
        if c == "$":
            tag = _dollar_tag(sql, i)
            if tag:
                end = sql.find(tag, i + len(tag))
                end = n if end < 0 else end
                line += sql.count("\n", i, end)
                code.append("$$?$$")
                i = end + len(tag)
                continue
        if c == ";":
            current = "".join(code)
            atomic = re.search(r"\bBEGIN\s+ATOMIC\b", current, re.I)
            if atomic and not re.search(r"\bEND\s*$", current, re.I):
                code.append(c)
                i += 1
                continue
            flush(i)
            code = []
            text_start = i + 1
            stmt_line = None
            i += 1
            continue
        if c == "\n":
            line += 1
        code.append(c)
        i += 1
    flush(n)
    return statements


def _strip_comments_edges(text):
    """Drop whole comment lines before a statement (Prisma's `-- CreateTable`), keep the rest as written."""
    lines = text.splitlines()
    while lines and (lines[0].strip().startswith("--") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip()


def _name(raw):
    """Normalise an identifier as PostgreSQL does: unquoted folds to lower case; the schema is dropped."""
    parts = [p.strip() for p in re.findall(_IDENT, raw)]
    last = parts[-1] if parts else raw
    return last[1:-1] if last.startswith('"') else last.lower()


def _split_top_level(code, sep=","):
    """Split on `sep` outside parentheses (ALTER TABLE actions, column lists)."""
    parts, depth, cur = [], 0, []
    for ch in code:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


_ALTER_TABLE = re.compile(
    r"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(" + _QNAME + r")\s*\*?\s+(.*)$", re.I | re.S)
_CREATE_TABLE = re.compile(
    r"^CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?("
    + _QNAME + r")", re.I)
_CREATE_INDEX = re.compile(
    r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:" + _QNAME + r"\s+)?ON\s+"
    r"(?:ONLY\s+)?(" + _QNAME + r")", re.I)
_SERIAL_OR_IDENTITY = re.compile(r"\b(SMALLSERIAL|SERIAL|BIGSERIAL|SERIAL[248]|GENERATED)\b", re.I)


def _alter_actions(stmt):
    """(table, [action code]) of an ALTER TABLE, or None."""
    m = _ALTER_TABLE.match(stmt.code)
    if not m:
        return None
    return _name(m.group(1)), _split_top_level(m.group(2))


def _action_findings(action, table, new_tables):
    """Rules hit by one ALTER TABLE action."""
    a = action
    rules = []
    m_add = re.match(r"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|CHECK\b|"
                     r"FOREIGN\b|EXCLUDE\b)(" + _IDENT + r")\s+(.*)$", a, re.I | re.S)
    if m_add:
        rest = m_add.group(2)
        if (re.search(r"\bNOT\s+NULL\b", rest, re.I) and not re.search(r"\bDEFAULT\b", rest, re.I)
                and not _SERIAL_OR_IDENTITY.search(rest) and table not in new_tables):
            rules.append("not-null-without-default")
        if re.search(r"\bREFERENCES\b", rest, re.I) and table not in new_tables:
            rules.append("foreign-key-without-not-valid")
        return rules
    if re.match(r"^DROP\s+(?!CONSTRAINT\b)(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?" + _IDENT, a, re.I) and not re.match(
            r"^DROP\s+(CONSTRAINT|DEFAULT|NOT\s+NULL|IDENTITY|EXPRESSION)\b", a, re.I):
        rules.append("drop-column")
    if re.match(r"^ALTER\s+(?:COLUMN\s+)?" + _IDENT + r"\s+(?:SET\s+DATA\s+)?TYPE\b", a, re.I):
        rules.append("alter-column-type")
    if re.match(r"^ALTER\s+(?:COLUMN\s+)?" + _IDENT + r"\s+SET\s+NOT\s+NULL\b", a, re.I) and table not in new_tables:
        rules.append("not-null-without-default")
    if re.match(r"^RENAME\b", a, re.I):
        rules.append("rename")
    if (re.match(r"^ADD\s+(?:CONSTRAINT\s+" + _IDENT + r"\s+)?FOREIGN\s+KEY\b", a, re.I)
            and not re.search(r"\bNOT\s+VALID\b", a, re.I) and table not in new_tables):
        rules.append("foreign-key-without-not-valid")
    return rules


def _statement_rules(stmt, new_tables):
    """Rules hit by one statement; records tables it creates in `new_tables`."""
    code = stmt.code
    m = _CREATE_TABLE.match(code)
    if m:
        new_tables.add(_name(m.group(1)))
        return []
    if re.match(r"^DROP\s+TABLE\b", code, re.I):
        return ["drop-table"]
    if re.match(r"^(TRUNCATE|DELETE\s+FROM|DROP\s+(SCHEMA|DATABASE|MATERIALIZED\s+VIEW|OWNED)\b)", code, re.I):
        return ["deletes-data"]
    if re.match(r"^DO\b", code, re.I):
        return ["do-block"]
    m = _CREATE_INDEX.match(code)
    if m:
        if not m.group(1) and _name(m.group(2)) not in new_tables:
            return ["index-without-concurrently"]
        return []
    if re.match(r"^ALTER\s+(VIEW|MATERIALIZED\s+VIEW|TYPE|SCHEMA)\b.*\bRENAME\b", code, re.I):
        return ["rename"]
    parsed = _alter_actions(stmt)
    if parsed is None:
        return []
    table, actions = parsed
    rules = []
    for action in actions:
        for rule in _action_findings(action, table, new_tables):
            if rule not in rules:
                rules.append(rule)
    return rules


def review(sql, migration=None):
    """Findings for one migration's SQL, in statement order."""
    findings = []
    new_tables = set()
    for stmt in split_statements(sql):
        for rule in _statement_rules(stmt, new_tables):
            findings.append(dict(migration=migration, statement=_shorten(stmt.text), rule=rule, why=WHY[rule],
                                 data_loss=rule in DATA_LOSS_RULES, line=stmt.line))
    return findings


def _shorten(text, limit=400):
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


# -- classification ---------------------------------------------------------------------------

_ADDITIVE_STATEMENTS = re.compile(
    r"^(CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX"
    r"|CREATE\s+(?:TYPE|DOMAIN|SEQUENCE|SCHEMA|EXTENSION|COLLATION)"
    r"|CREATE\s+(?:(?:TEMP|TEMPORARY|RECURSIVE)\s+)?VIEW"
    r"|CREATE\s+MATERIALIZED\s+VIEW"
    r"|CREATE\s+(?:FUNCTION|PROCEDURE|AGGREGATE)"
    r"|ALTER\s+TYPE\s+" + _QNAME + r"\s+ADD\s+VALUE"
    r"|COMMENT\s+ON|GRANT|INSERT\s+INTO)\b", re.I)


def _alter_action_is_additive(action, table, new_tables):
    if table in new_tables:
        return True, None
    a = action
    m_add = re.match(r"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|CHECK\b|"
                     r"FOREIGN\b|EXCLUDE\b)(" + _IDENT + r")\s+(.*)$", a, re.I | re.S)
    if m_add:
        rest = m_add.group(2)
        if (re.search(r"\bNOT\s+NULL\b", rest, re.I) and not re.search(r"\bDEFAULT\b", rest, re.I)
                and not _SERIAL_OR_IDENTITY.search(rest)):
            return False, "adds a NOT NULL column without a DEFAULT: the previous release's INSERTs fail"
        if re.search(r"\b(UNIQUE|PRIMARY\s+KEY|CHECK)\b", rest, re.I):
            return False, "adds a column with a constraint the previous release's writes may violate"
        return True, None
    if re.match(r"^ADD\s+(?:CONSTRAINT\s+" + _IDENT + r"\s+)?FOREIGN\s+KEY\b", a, re.I):
        return True, None
    if re.match(r"^ALTER\s+(?:COLUMN\s+)?" + _IDENT + r"\s+SET\s+(DEFAULT|STATISTICS|STORAGE)\b", a, re.I):
        return True, None
    if re.match(r"^VALIDATE\s+CONSTRAINT\b", a, re.I):
        return True, None
    rules = _action_findings(a, table, new_tables)
    if rules:
        return False, WHY[rules[0]]
    return False, "ALTER TABLE action not known to be additive: %s" % _shorten(a, 120)


def _statement_class(stmt, new_tables):
    """(additive: bool or None for neutral, reason when not additive)."""
    code = stmt.code
    if _NEUTRAL.match(code):
        return None, None
    m = _CREATE_TABLE.match(code)
    if m:
        new_tables.add(_name(m.group(1)))
        return True, None
    if re.match(r"^CREATE\s+OR\s+REPLACE\b", code, re.I):
        return False, "replaces an existing definition the previous release may rely on"
    if re.match(r"^DO\b", code, re.I):
        return False, "procedural DO block: not understood, so treated as destructive"
    if _ADDITIVE_STATEMENTS.match(code):
        return True, None
    parsed = _alter_actions(stmt)
    if parsed is not None:
        table, actions = parsed
        for action in actions:
            ok, reason = _alter_action_is_additive(action, table, new_tables)
            if not ok:
                return False, reason
        return True, None
    for rule in _statement_rules(stmt, set(new_tables)):
        return False, WHY[rule]
    return False, "statement not known to be additive"


def classify_with_reasons(sql):
    """('additive' | 'destructive', [reasons]). Reasons name the statements that are not additive."""
    reasons = []
    new_tables = set()
    for stmt in split_statements(sql):
        additive, reason = _statement_class(stmt, new_tables)
        if additive is False:
            reasons.append("%s: %s" % (_shorten(stmt.text, 160), reason))
    return (DESTRUCTIVE if reasons else ADDITIVE), reasons


def classify(sql):
    """'additive' when the previous release runs unchanged on the new schema; else 'destructive'."""
    return classify_with_reasons(sql)[0]


def classify_migration(sql, has_downgrade=False, findings=None):
    """{'class', 'reasons'}: additive, else reversible (a real downgrade and no data-losing finding), else destructive.

    `has_downgrade` is only true for Alembic revisions whose downgrade emits statements.
    """
    cls, reasons = classify_with_reasons(sql)
    if cls == ADDITIVE:
        return {"class": ADDITIVE, "reasons": ["only adds schema objects the previous release ignores"]}
    findings = review(sql) if findings is None else findings
    lossy = [f for f in findings if f.get("data_loss")]
    if has_downgrade and not lossy:
        return {"class": REVERSIBLE, "reasons": reasons + ["its downgrade undoes it and nothing in it destroys data"]}
    if has_downgrade:
        reasons = reasons + ["the downgrade cannot restore data destroyed by: %s" % ", ".join(
            sorted(set(f["rule"] for f in lossy)))]
    return {"class": DESTRUCTIVE, "reasons": reasons}

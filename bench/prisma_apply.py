"""`python -m bench.prisma_apply APP_DIR`: what `npx prisma migrate deploy` does in the manual
script. Prisma's native engine cannot be downloaded on this machine, so this applies the
migrations with maestro.deploy.prisma_migrate engine=native, the same apply the automation uses.
DATABASE_URL comes from the environment, as for Prisma."""

import os
import sys
import tempfile

from tests.support.modrun import run_module


def main(argv):
    app_dir = argv[0]
    with tempfile.TemporaryDirectory() as work:
        run = run_module("prisma_migrate", {"project_dir": app_dir, "database_url": os.environ["DATABASE_URL"],
                                            "engine": "native", "review": "off"}, work, timeout=600)
    if run.failed:
        print(run.result.get("msg"), file=sys.stderr)
        return 1
    print("applied: " + ", ".join(run.result.get("applied") or []) or "nothing to apply")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

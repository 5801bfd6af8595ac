"""Where things are in this repository, for tests, the demo and the benchmarks."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE_APP = os.path.join(REPO, "examples", "app")
PLAIN_APP = os.path.join(REPO, "examples", "app-plain")
NODE_BIN = os.path.join(REPO, "node_modules", ".bin")
PM2 = os.path.join(NODE_BIN, "pm2")
PRISMA = os.path.join(NODE_BIN, "prisma")
VENV_BIN = os.path.dirname(sys.executable)
ANSIBLE_CFG = os.path.join(REPO, "ansible.cfg")

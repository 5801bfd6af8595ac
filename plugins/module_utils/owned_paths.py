# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A new private directory or file handed to another user (the server's) by a module running as
root, without a window for that user to swap the path: ownership is set on the open descriptor
(fchown), never by path, and nothing is opened through a symlink."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def make_dir(path, uid, gid):
    """mkdir 0700, then (as root) chown the directory that was made, through its descriptor."""
    os.mkdir(path, 0o700)
    if os.geteuid() != 0:
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW)
    try:
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def write_new_file(path, text, uid, gid):
    """Create `path` (it must not exist) 0600 with `text`; as root owned by uid:gid, set on the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        if os.geteuid() == 0:
            os.fchown(fh.fileno(), uid, gid)
        fh.write(text)

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Peer: a batched imaplib script.

    batched.py HOST PORT USER PASSWORD MAILBOX

One UID SEARCH FROM "Cron Daemon", one UID STORE +FLAGS.SILENT (\\Deleted)
over every UID found (comma-separated, as most scripts write it), one
EXPUNGE, LOGOUT. Needs a server that accepts the long STORE line.
"""
import imaplib
import sys

host, port, user, password, mailbox = sys.argv[1:6]
M = imaplib.IMAP4(host, int(port))
M.login(user, password)
M.select(mailbox)
typ, data = M.uid("SEARCH", "FROM", '"Cron Daemon"')
uids = data[0].split()
if uids:
    M.uid("STORE", b",".join(uids).decode(), "+FLAGS.SILENT", "(\\Deleted)")
    M.expunge()
M.logout()
print(f"deleted {len(uids)}")

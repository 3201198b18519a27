#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Peer: the seed-style per-message script (shared/seeds/000_*.txt).

    seed_per_message.py HOST PORT USER PASSWORD MAILBOX

SEARCH FROM "Cron Daemon" (message sequence numbers, as in the seed), one
STORE +FLAGS \\Deleted per message, then EXPUNGE and LOGOUT. The seed closed
the mailbox with CLOSE, which also expunges; EXPUNGE is used here so every
peer ends the same way. Standard library imaplib only.
"""
import imaplib
import sys

host, port, user, password, mailbox = sys.argv[1:6]
M = imaplib.IMAP4(host, int(port))
M.login(user, password)
M.select(mailbox)
typ, data = M.search(None, "FROM", '"Cron Daemon"')
n = 0
if data[0]:
    for num in data[0].split():
        M.store(num, "+FLAGS", "\\Deleted")
        n += 1
M.expunge()
M.logout()
print(f"deleted {n}")

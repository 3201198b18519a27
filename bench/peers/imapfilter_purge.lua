-- SPDX-License-Identifier: MIT
-- Peer: imapfilter, one-shot purge (bench/run.py fills in @...@).
options.timeout = 3600
options.starttls = false
options.subscribe = false
options.info = false
acc = IMAP {
    server = '127.0.0.1',
    port = @PORT@,
    username = '@USER@',
    password = '@PASSWORD@',
}
res = acc['@MAILBOX@']:contain_from('Cron Daemon')
res:delete_messages()

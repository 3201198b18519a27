-- SPDX-License-Identifier: MIT
-- Peer: imapfilter, IDLE loop on one mailbox (bench/run.py fills in @...@).
-- @SSL@ is "ssl = 'auto'," for implicit TLS, empty for plain.
options.timeout = 120
options.starttls = false
options.subscribe = false
options.info = false
acc = IMAP {
    server = '@HOST@',
    port = @PORT@,
    username = '@USER@',
    password = '@PASSWORD@',
    @SSL@
}
box = acc['@MAILBOX@']
while true do
    box:contain_from('Cron Daemon'):delete_messages()
    print('ready')
    io.stdout:flush()
    box:enter_idle()
end

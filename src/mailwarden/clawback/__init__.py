"""Clawback: find delivered copies of a message in the recipients' mailboxes and move or delete them
(Microsoft Graph, Gmail API, IMAP), and the jobs that do it for one message, a campaign or a policy."""

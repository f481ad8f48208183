"""Every heuristic symbol with its default weight, in one table.

The prefix says which verdict a weight counts towards (see pipeline/decide.py): `PHISH_` the phish
score, `BULK_` the bulk complaint level, anything else the spam score. Config `[stages.spam.weights]`
overrides any weight; a weight of 0 turns a symbol off.
"""

from __future__ import annotations

# symbol -> (default weight, what it means)
SYMBOLS: dict[str, tuple[float, str]] = {
    # headers.py
    "DATE_MISSING": (1.0, "no Date header"),
    "DATE_MALFORMED": (1.0, "Date header that does not parse"),
    "DATE_IN_FUTURE": (1.5, "Date more than a day after the newest Received timestamp"),
    "DATE_IN_PAST": (1.0, "Date more than four days before the newest Received timestamp"),
    "FROM_DOMAIN_INVALID": (5.0, "the From address's domain is not a valid host name"),
    "MID_MISSING": (0.5, "no Message-ID header"),
    "MID_MALFORMED": (2.0, "Message-ID not shaped <left@right.domain>"),
    "MID_BARE_IP_OR_LOCAL": (0.5, "Message-ID right-hand side is an IP literal or localhost"),
    "RCVD_TIME_DISORDER": (1.0, "an older Received hop is stamped more than an hour after a newer one"),
    "RCVD_BOGUS_IP": (1.5, "a Received hop claims an impossible address or a private IP under a public name"),
    "REPLYTO_DIFF_DOMAIN": (0.5, "Reply-To registered domain differs from the From domain"),
    "PHISH_REPLYTO_FREEMAIL": (3.0, "Reply-To is a freemail mailbox while From is not that freemail domain"),
    "RETURNPATH_MISMATCH": (0.0, "Return-Path registered domain differs from the From domain"),
    "PHISH_DISPLAY_NAME_ADDRESS": (3.0, "display name shows an email address other than the real From"),
    "RCPT_UNDISCLOSED": (1.0, "To is undisclosed-recipients or empty"),
    "RCPT_MANY": (0.5, "more than 15 visible recipients"),
    # html.py
    "HTML_HIDDEN_TEXT": (1.5, "text hidden by CSS or coloured like its background"),
    "HTML_ZERO_FONT": (1.0, "font-size 0 or 1px text"),
    "HTML_IMAGE_ONLY": (2.0, "images with almost no text"),
    "HTML_ONLY": (1.0, "an HTML body and no text/plain alternative"),
    "PHISH_HTML_FORM": (1.0, "an HTML form that posts or asks for an e-mail address"),
    "PHISH_HTML_PASSWORD_FORM": (4.0, "an HTML form with a password field"),
    "HTML_EXTERNAL_SCRIPT": (1.0, "a <script src=...> from elsewhere"),
    "HTML_ENTITY_OBFUSCATION": (0.5, "letters written as numeric character references"),
    "HTML_ZERO_WIDTH": (1.5, "zero-width characters inside words"),
    "MIXED_SCRIPT_WORD": (1.5, "a word mixing Latin with Cyrillic or Greek letters"),
    # urls.py
    "PHISH_URL_IP_HOST": (2.0, "a link to a bare IP address"),
    "PHISH_URL_SHORTENER": (2.0, "a link through a URL shortener"),
    "PHISH_ANCHOR_MISMATCH": (3.5, "link text shows a domain other than the link's registered domain"),
    "PHISH_URL_SUSPICIOUS_TLD": (1.5, "a link into a top-level domain abused far more than used"),
    "URL_MANY_DOMAINS": (0.5, "links to more than 10 registered domains"),
    "PHISH_URL_PUNYCODE": (1.5, "a link host in punycode"),
    "PHISH_URL_USERINFO": (3.0, "an @ in a link's authority (user@host trick)"),
    "PHISH_URL_DATA_URI": (1.5, "a data: URI link or form target"),
    "URL_FREE_HOSTING": (0.0, "a link to free hosting, a form builder or a file share (alone no evidence)"),
    # phishing.py
    "PHISH_CREDENTIAL_WORDING": (3.0, "credential-harvest wording together with a link or form"),
    "PHISH_URGENCY_ACCOUNT": (1.5, "urgency together with account or payment wording and a link"),
    "PHISH_BRAND_DISPLAY_NAME": (4.0, "display name names a well-known brand the From domain does not belong to"),
    "PHISH_BRAND_SUBJECT": (1.0, "subject names a well-known brand the From domain does not belong to"),
    "PHISH_ORG_DISPLAY_NAME": (4.0, "an external sender's display name shows the organisation's name or domain"),
    "PRIZE_WORDING": (2.0, "prize, lottery, gift-card or free-spins wording"),
    "ADVANCE_FEE_WORDING": (2.5, "two or more advance-fee fraud phrases (beneficiary, next of kin, sum of ...)"),
    "PHISH_DMARC_FAIL": (2.0, "the From domain fails DMARC"),
    # lookalike.py
    "PHISH_LOOKALIKE_ORG": (5.0, "sender or link domain looks like one of the organisation's domains"),
    "PHISH_LOOKALIKE_BRAND": (4.0, "sender or link domain looks like a well-known brand's domain"),
    "PHISH_BRAND_IN_DOMAIN": (1.5, "a brand name embedded in a longer domain that is not the brand's"),
    "PHISH_PUNYCODE_SENDER": (2.0, "the From domain is punycode"),
    # qr.py
    "QR_URL": (0.5, "a QR code in an image or a document holds a web link"),
    "PHISH_QR_LURE": (3.0, "a QR code's link in a message that asks to scan it or has little text of its own"),
    "PHISH_QR_SUSPICIOUS_URL": (
        2.0,
        "a QR code's link fails a link check (IP host, shortener, TLD, free hosting, ...)",
    ),
    # composites (composites.py: computed from the other symbols and their weights)
    "PHISH_URL_FREE_HOSTING": (
        2.0,
        "a link to free hosting, a form or a file share beside a lure or concealment",
    ),
    "PHISH_SUSPICIOUS_MIX": (2.0, "phish evidence of 3 or more together with spam evidence of 2 or more"),
    "SPAM_BULK_PHISH": (2.0, "phish evidence of 1.5 or more in mail sent through an email service provider"),
    # bulk.py
    "BULK_LIST_UNSUBSCRIBE": (1.0, "a List-Unsubscribe header"),
    "BULK_ONE_CLICK": (1.5, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
    "BULK_PRECEDENCE": (1.0, "Precedence: bulk or list"),
    "BULK_MAILER": (2.0, "a bulk mailer's headers (X-Campaign, X-Mailchimp-..., Feedback-ID, ESP hops)"),
    "BULK_TRACKING_PIXEL": (1.5, "a 1x1 or hidden remote image"),
    "BULK_UNSUBSCRIBE_FOOTER": (1.0, "an unsubscribe link or wording in the body"),
    "LIST": (
        0.0,
        "a mailing-list post: List-Id with List-Post, Mailman or Google Groups headers or the list's ARC seal",
    ),
}

DEFAULT_WEIGHTS: dict[str, float] = {name: weight for name, (weight, _) in SYMBOLS.items()}

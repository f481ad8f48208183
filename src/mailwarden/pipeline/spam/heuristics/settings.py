"""The heuristics' settings: weights plus the small lists they consult, all overridable by config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mailwarden.errors import ConfigError
from mailwarden.pipeline.spam.heuristics.symbols import DEFAULT_WEIGHTS

SHORTENERS = frozenset(
    {
        "bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly",
        "cutt.ly", "shorturl.at", "t.ly", "tiny.cc", "rb.gy", "s.id", "v.gd", "bl.ink", "lnkd.in", "qrco.de",
        "shorturl.asia", "short.gy", "urlz.fr", "bit.do", "x.gd", "surl.li", "tinu.be", "u.to", "clck.ru",
    }
)  # fmt: skip

SUSPICIOUS_TLDS = frozenset(
    {
        "top", "xyz", "icu", "buzz", "click", "link", "rest", "cyou", "sbs", "cfd", "monster", "quest", "lol",
        "shop", "bond", "autos", "boats", "hair", "makeup", "skin", "mom", "beauty", "zip", "mov", "tk",
        "ml", "ga", "cf", "gq", "su", "ru", "work", "support", "live", "online", "site", "website", "space",
        "fun", "pw", "cc", "ws", "digital", "best", "kim", "loan", "win", "bid", "vip", "club",
    }
)  # fmt: skip

FREE_HOSTING = frozenset(
    {
        # free site builders, page hosts and storage buckets
        "weebly.com", "wixsite.com", "wix.com", "000webhostapp.com", "firebaseapp.com", "web.app",
        "pages.dev", "workers.dev", "netlify.app", "vercel.app", "glitch.me", "github.io", "gitbook.io",
        "herokuapp.com", "repl.co", "replit.app", "blogspot.com", "sites.google.com", "storage.googleapis.com",
        "firebasestorage.googleapis.com", "appspot.com", "r2.dev", "ipfs.io", "dweb.link", "square.site",
        "webflow.io", "godaddysites.com", "mystrikingly.com", "framer.app", "carrd.co", "wordpress.com",
        "azurewebsites.net", "web.core.windows.net", "blob.core.windows.net", "amazonaws.com",
        "backblazeb2.com", "ngrok.io", "ngrok-free.app", "surge.sh", "tiiny.site", "wuaze.com",
        # form builders and survey tools
        "forms.gle", "forms.office.com", "jotform.com", "typeform.com", "formstack.com",
        "123formbuilder.com", "formspree.io", "wufoo.com", "surveymonkey.com", "zohoforms.com",
        "hsforms.com", "paperform.co", "cognitoforms.com",
        # document and file-share pages used as a hop to the phishing page
        "sway.office.com", "canva.site", "my.canva.site", "notion.site", "dropboxusercontent.com",
        "docdroid.net", "flowcode.com", "linktr.ee", "docs.google.com", "drive.google.com",
        "sharepoint.com", "1drv.ms", "onedrive.live.com", "dropbox.com", "db.tt", "wetransfer.com", "we.tl",
        "box.com", "app.box.com", "mediafire.com", "pcloud.link", "fromsmash.com", "files.fm",
    }
)  # fmt: skip

# Click trackers and link-protection rewriters: a link through one shows the tracker's host, not where it
# leads. An entry is a host (and the hosts under it) or `host/path` (only links whose path starts so).
CLICK_TRACKERS = frozenset(
    {
        # link protection of mail gateways and web mail
        "safelinks.protection.outlook.com", "urldefense.com", "urldefense.proofpoint.com",
        "mimecastprotect.com", "mimecast.com", "exclaimer.net", "cudasvc.com", "secure-web.cisco.com",
        "trendmicro.com", "barracudanetworks.com", "sophos.com", "fireeyecloud.com", "urlsand.esvalabs.com",
        "lnks.gd", "l.facebook.com", "lm.facebook.com", "l.instagram.com", "google.com/url",
        # email service providers' click tracking
        "list-manage.com", "sendgrid.net", "mailgun.org", "awstrack.me", "hubspotlinks.com",
        "hubspotemail.net", "rs6.net", "exct.net", "exacttarget.com", "pardot.com", "mandrillapp.com",
        "mjt.lu", "sendibt2.com", "sendibt3.com", "klclick.com", "klclick1.com", "klclick3.com",
        "createsend1.com", "cmail19.com", "cmail20.com", "mlsend.com", "acemlna.com", "acemlnb.com",
        "acemlnc.com", "acemlnd.com", "sparkpostmail.com", "pstmrk.it", "substack.com/redirect",
        "mail.beehiiv.com", "convertkit-mail.com", "convertkit-mail2.com", "clicks.aweber.com", "eloqua.com",
        "en25.com", "emarsys.net", "customeriomail.com",
    }
)  # fmt: skip

FREEMAIL = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.co.jp", "yahoo.fr", "yahoo.de",
        "ymail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "outlook.de", "live.com",
        "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "gmx.de", "gmx.net", "gmx.com", "web.de",
        "mail.com", "mail.ru", "yandex.ru", "yandex.com", "proton.me", "protonmail.com", "zoho.com",
        "t-online.de", "uol.com.br", "bol.com.br", "terra.com.br", "libero.it", "orange.fr", "free.fr",
        "laposte.net", "qq.com", "163.com", "126.com", "naver.com", "rediffmail.com", "tutanota.com",
    }
)  # fmt: skip

# brand -> its registered domains. The brand's name is matched as a word in display names and
# subjects; the key with spaces removed is the token looked for inside domains.
BRANDS: dict[str, frozenset[str]] = {
    "microsoft": frozenset({"microsoft.com", "office.com", "office365.com", "outlook.com", "live.com",
                            "microsoftonline.com", "sharepoint.com", "onmicrosoft.com", "hotmail.com",
                            "microsoft365.com", "azure.com", "msn.com", "skype.com",
                            "onedrive.com", "xbox.com", "bing.com"}),
    "office 365": frozenset({"office.com", "office365.com", "microsoft.com", "microsoftonline.com",
                             "onmicrosoft.com", "sharepoint.com", "microsoft365.com"}),
    "outlook": frozenset({"outlook.com", "microsoft.com", "office.com", "live.com", "hotmail.com",
                          "office365.com"}),
    "onedrive": frozenset({"microsoft.com", "live.com", "onedrive.com", "sharepoint.com", "1drv.ms"}),
    "sharepoint": frozenset({"sharepoint.com", "microsoft.com", "onmicrosoft.com"}),
    "paypal": frozenset({"paypal.com", "paypal.de", "paypal.co.uk", "paypal.fr", "paypal.nl", "paypal.com.br",
                         "paypal-communication.com", "paypal.me"}),
    "apple": frozenset({"apple.com", "icloud.com", "me.com", "mac.com", "itunes.com"}),
    "icloud": frozenset({"apple.com", "icloud.com", "me.com"}),
    "amazon": frozenset({"amazon.com", "amazon.de", "amazon.co.uk", "amazon.fr", "amazon.nl", "amazon.com.br",
                         "amazon.co.jp", "amazon.it", "amazon.es", "amazon.ca", "amazonses.com", "aws.com",
                         "amazonaws.com", "amazon.jobs"}),
    "netflix": frozenset({"netflix.com", "netflix.net"}),
    "dhl": frozenset({"dhl.com", "dhl.de", "dhl.nl", "dhl.fr", "dhl.co.uk", "deutschepost.de", "dpdhl.com",
                      "dhl-news.com"}),
    "fedex": frozenset({"fedex.com"}),
    "ups": frozenset({"ups.com"}),
    "usps": frozenset({"usps.com", "usps.gov"}),
    "correios": frozenset({"correios.com.br"}),
    "postnl": frozenset({"postnl.nl", "postnl.com"}),
    "docusign": frozenset({"docusign.com", "docusign.net"}),
    "adobe": frozenset({"adobe.com", "adobesign.com", "echosign.com"}),
    "dropbox": frozenset({"dropbox.com", "dropboxmail.com"}),
    "wetransfer": frozenset({"wetransfer.com"}),
    "google": frozenset({"google.com", "gmail.com", "googlemail.com", "youtube.com", "google.de",
                         "googlegroups.com", "googleusercontent.com", "googleapis.com", "gstatic.com",
                         "googlesource.com", "googleblog.com", "google.co.uk", "google.com.br"}),
    "facebook": frozenset({"facebook.com", "facebookmail.com", "meta.com", "fb.com"}),
    "instagram": frozenset({"instagram.com", "facebookmail.com", "mail.instagram.com"}),
    "whatsapp": frozenset({"whatsapp.com", "whatsapp.net"}),
    "linkedin": frozenset({"linkedin.com"}),
    "coinbase": frozenset({"coinbase.com"}),
    "binance": frozenset({"binance.com"}),
    "metamask": frozenset({"metamask.io", "consensys.net"}),
    "ledger": frozenset({"ledger.com"}),
    "wells fargo": frozenset({"wellsfargo.com"}),
    "chase": frozenset({"chase.com", "jpmorgan.com", "jpmchase.com"}),
    "bank of america": frozenset({"bankofamerica.com", "bofa.com"}),
    "santander": frozenset({"santander.com", "santander.de", "santander.co.uk", "santander.com.br"}),
    "sparkasse": frozenset({"sparkasse.de", "s-finanzgruppe.de"}),
    "commerzbank": frozenset({"commerzbank.de", "commerzbank.com"}),
    "deutsche bank": frozenset({"deutsche-bank.de", "db.com"}),
    "volksbank": frozenset({"volksbank.de", "vr.de"}),
    "ing": frozenset({"ing.com", "ing.de", "ing.nl", "ing.be"}),
    "rabobank": frozenset({"rabobank.nl", "rabobank.com"}),
    "abn amro": frozenset({"abnamro.nl", "abnamro.com"}),
    "itaú": frozenset({"itau.com.br"}),
    "bradesco": frozenset({"bradesco.com.br"}),
    "nubank": frozenset({"nubank.com.br"}),
    "caixa": frozenset({"caixa.gov.br"}),
    "banco do brasil": frozenset({"bb.com.br"}),
    "crédit agricole": frozenset({"credit-agricole.fr", "credit-agricole.com"}),
    "société générale": frozenset({"societegenerale.fr", "socgen.com"}),
    "ebay": frozenset({"ebay.com", "ebay.de", "ebay.co.uk", "ebay.fr"}),
    "spotify": frozenset({"spotify.com"}),
    "norton": frozenset({"norton.com", "nortonlifelock.com", "gen.digital"}),
    "mcafee": frozenset({"mcafee.com"}),
    "mercado pago": frozenset({"mercadopago.com", "mercadopago.com.br", "mercadolivre.com.br", "mercadolibre.com"}),
    "mercado livre": frozenset({"mercadolivre.com.br", "mercadolibre.com"}),
    "lidl": frozenset({"lidl.de", "lidl.nl", "lidl.com", "lidl.fr", "lidl.co.uk"}),
    "aldi": frozenset({"aldi.de", "aldi-sued.de", "aldi-nord.de", "aldi.nl", "aldi.co.uk", "aldi.us"}),
    "walmart": frozenset({"walmart.com"}),
    "costco": frozenset({"costco.com"}),
    "verizon": frozenset({"verizon.com", "verizonwireless.com"}),
    "t-mobile": frozenset({"t-mobile.com", "t-mobile.de", "telekom.de"}),
    "telekom": frozenset({"telekom.de", "t-online.de", "telekom.com"}),
    "vodafone": frozenset({"vodafone.com", "vodafone.de", "vodafone.nl", "vodafone.co.uk"}),
    "kpn": frozenset({"kpn.com", "kpnmail.nl"}),
    "ziggo": frozenset({"ziggo.nl"}),
    "bol.com": frozenset({"bol.com"}),
    "coolblue": frozenset({"coolblue.nl", "coolblue.be"}),
    "albert heijn": frozenset({"ah.nl", "albertheijn.nl"}),
    "dpd": frozenset({"dpd.com", "dpd.de", "dpd.nl", "dpd.co.uk"}),
    "gls": frozenset({"gls-group.eu", "gls-group.com", "gls-pakete.de"}),
    "hermes": frozenset({"myhermes.de", "hermesworld.com", "evri.com"}),
    "royal mail": frozenset({"royalmail.com", "royalmail.co.uk"}),
    "la poste": frozenset({"laposte.fr", "laposte.net", "colissimo.fr"}),
    "colissimo": frozenset({"colissimo.fr", "laposte.fr"}),
    "chronopost": frozenset({"chronopost.fr"}),
    "deutsche post": frozenset({"deutschepost.de", "dhl.de"}),
    "trust wallet": frozenset({"trustwallet.com"}),
    "kraken": frozenset({"kraken.com"}),
    "crypto.com": frozenset({"crypto.com"}),
    "booking.com": frozenset({"booking.com"}),
    "airbnb": frozenset({"airbnb.com"}),
    "steam": frozenset({"steampowered.com", "steamcommunity.com"}),
    "roblox": frozenset({"roblox.com"}),
    "disney+": frozenset({"disneyplus.com", "disney.com"}),
    "hbo max": frozenset({"hbomax.com", "max.com"}),
    "american express": frozenset({"americanexpress.com", "aexp.com"}),
    "amex": frozenset({"americanexpress.com", "aexp.com"}),
    "visa": frozenset({"visa.com"}),
    "mastercard": frozenset({"mastercard.com"}),
    "citibank": frozenset({"citi.com", "citibank.com"}),
    "barclays": frozenset({"barclays.co.uk", "barclays.com"}),
    "hsbc": frozenset({"hsbc.com", "hsbc.co.uk"}),
    "lloyds": frozenset({"lloydsbank.com", "lloydsbank.co.uk"}),
    "n26": frozenset({"n26.com"}),
    "revolut": frozenset({"revolut.com"}),
    "postbank": frozenset({"postbank.de"}),
    "irs": frozenset({"irs.gov"}),
    "receita federal": frozenset({"gov.br", "receita.fazenda.gov.br"}),
    "gov.br": frozenset({"gov.br"}),
    "belastingdienst": frozenset({"belastingdienst.nl"}),
    "hmrc": frozenset({"hmrc.gov.uk", "gov.uk"}),
    "zoom": frozenset({"zoom.us", "zoom.com"}),
    "webex": frozenset({"webex.com", "cisco.com"}),
    "office": frozenset(),
    "webmail": frozenset(),
}  # fmt: skip


def _strings(section: Mapping[str, Any], key: str, default: frozenset[str]) -> frozenset[str]:
    value = section.get(key)
    if value is None:
        return default
    if not isinstance(value, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"stages.spam.{key}: expected a list of strings")
    return frozenset(v.lower().strip(".") for v in value)


@dataclass(frozen=True)
class HeuristicsSettings:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    shorteners: frozenset[str] = SHORTENERS
    suspicious_tlds: frozenset[str] = SUSPICIOUS_TLDS
    free_hosting: frozenset[str] = FREE_HOSTING
    freemail: frozenset[str] = FREEMAIL
    brands: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(BRANDS))
    click_trackers: frozenset[str] = CLICK_TRACKERS

    # Tables derived from the lists, built on first use and kept with the settings (not per message).
    @cached_property
    def brand_domains(self) -> Mapping[str, str]:
        """Each brand domain and the (last listed) brand it belongs to."""
        return {d: brand for brand, ds in self.brands.items() for d in ds}

    @cached_property
    def imitable_brand_domains(self) -> frozenset[str]:
        """Brand domains a lookalike could imitate: freemail domains are everyone's sender domains."""
        return frozenset(self.brand_domains) - self.freemail

    @cached_property
    def tracker_paths(self) -> Mapping[str, tuple[str, ...]]:
        """Each click-tracker host and the path prefixes it tracks under ('' for every path)."""
        out: dict[str, tuple[str, ...]] = {}
        for entry in self.click_trackers:
            host, slash, path = entry.partition("/")
            out[host] = (*out.get(host, ()), slash + path)
        return out

    @cached_property
    def tracker_hosts(self) -> frozenset[str]:
        return frozenset(self.tracker_paths)

    @cached_property
    def brand_tokens(self) -> tuple[tuple[str, str], ...]:
        """(brand, the brand's name without spaces) for brands with domains, in table order."""
        return tuple((b, b.replace(" ", "")) for b, ds in self.brands.items() if ds)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> HeuristicsSettings:
        """Settings from `[stages.spam]`: `weights` table, and lists replacing the built-in ones."""
        section = section or {}
        weights = dict(DEFAULT_WEIGHTS)
        for name, value in (section.get("weights") or {}).items():
            if name not in weights:
                continue  # weights for other spam-stage symbols (Bayes) live in the same table
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"stages.spam.weights.{name}: expected a number")
            weights[name] = float(value)
        brands = dict(BRANDS)
        for name, domains in (section.get("brands") or {}).items():
            if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
                raise ConfigError(f"stages.spam.brands.{name}: expected a list of domains")
            brands[str(name).lower()] = frozenset(d.lower() for d in domains)
        return cls(
            weights=weights,
            shorteners=_strings(section, "url_shorteners", SHORTENERS),
            suspicious_tlds=_strings(section, "suspicious_tlds", SUSPICIOUS_TLDS),
            free_hosting=_strings(section, "free_hosting", FREE_HOSTING),
            freemail=_strings(section, "freemail", FREEMAIL),
            brands=brands,
            click_trackers=_strings(section, "click_trackers", CLICK_TRACKERS),
        )

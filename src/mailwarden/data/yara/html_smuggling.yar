/*
 * mailwarden rule pack: HTML smuggling.
 * An HTML or SVG attachment that decodes an embedded payload in the browser, wraps it in a Blob and
 * saves it without a server ever sending the file.
 */

rule MW_HTML_Smuggling_Blob_Download
{
    meta:
        description = "HTML/SVG that builds a Blob from base64 or char codes and triggers a download of an embedded file"
        family = "html-smuggling"
        severity = "high"
        author = "mailwarden"

    strings:
        $doc_html = "<html" nocase
        $doc_svg = "<svg" nocase
        $doc_script = "<script" nocase

        $blob_new = /new\s+Blob\s*\(/
        $blob_u8 = "Uint8Array"

        $decode_atob = /atob\s*\(/
        $decode_chars = "fromCharCode"
        $decode_codes = "charCodeAt"

        $save_ms = "msSaveOrOpenBlob"
        $save_ms2 = "msSaveBlob"
        $save_url = "createObjectURL"
        $save_attr = /\.download\s*=/
        $save_attr2 = /\.setAttribute\s*\(\s*["']download["']/

        // base64 of the first bytes of an executable, archive or disk image
        $b64_pe1 = "TVqQAAMAAAAEAAAA"
        $b64_pe2 = "TVpQAAIAAAAEAA8A"
        $b64_pe3 = "TVoAAAAAAAAAAAAA"
        $b64_zip = "UEsDBBQA"
        $b64_zip2 = "UEsDBAoA"
        $b64_7z = "N3q8ryccAA"
        $b64_rar = "UmFyIRoH"
        $b64_ole = "0M8R4KGxGuEA"
        $b64_iso = "Q0QwMDEB"
        // the same headers as comma-separated char codes: "MZ", "PK\x03\x04"
        $codes_pe = /\b77\s*,\s*90\s*,\s*(144|80|0)\s*,/
        $codes_zip = /\b80\s*,\s*75\s*,\s*3\s*,\s*4\s*,/

    condition:
        filesize < 40MB
        and any of ($doc_*)
        and any of ($blob_*)
        and any of ($decode_*)
        and any of ($save_*)
        and (any of ($b64_*) or any of ($codes_*) or (filesize > 256KB and $blob_new and $decode_atob))
}

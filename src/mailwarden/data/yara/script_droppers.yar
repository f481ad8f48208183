/*
 * mailwarden rule pack: script droppers.
 * Scripts that fetch something and run it. Fetching alone (an admin script downloading a package) or
 * running alone (a logon script mapping drives) is not enough; the strongest one-liners are.
 */

rule MW_Script_Dropper
{
    meta:
        description = "JS/VBS/WSF/HTA/PowerShell/batch script that downloads and executes, or an encoded PowerShell launch"
        family = "script-dropper"
        severity = "high"
        author = "mailwarden"

    strings:
        // one-liners that only droppers write
        $strong_enc = /powershell(\.exe)?["']?(\s+-\w+(\s+\w+)?)*\s+-e(nc|ncodedcommand|c)?\s+[A-Za-z0-9+\/=]{24,}/ nocase
        $strong_iex = /(iex|invoke-expression)\s*\(?\s*\(?\s*new-object\s+(system\.)?net\.webclient\s*\)?\s*\.\s*download(string|data)/ nocase
        $strong_iex2 = /download(string|data)\s*\([^)]{1,300}\)\s*\|\s*(iex|invoke-expression)\b/ nocase
        $strong_cert = /certutil(\.exe)?\s+(-[a-z]+\s+)*-urlcache\s+(-[a-z]+\s+)*(-f\s+)?(-split\s+)?["']?https?:/ nocase
        $strong_bits = /bitsadmin(\.exe)?\s+\/transfer\s+\S+\s+(\/[a-z]+\s+([a-z]+\s+)?)*["']?https?:/ nocase

        // can fetch
        $fetch_xmlhttp = /(msxml2|microsoft)\.(server)?xmlhttp/ nocase
        $fetch_winhttp = "WinHttp.WinHttpRequest" nocase
        $fetch_webclient = "Net.WebClient" nocase
        $fetch_iwr = /\b(invoke-webrequest|iwr|start-bitstransfer)\b/ nocase
        $fetch_curl = /\b(curl|wget)(\.exe)?\s+(-[a-z]+\s+)*["']?https?:\/\//

        // can run or drop
        $run_wshell = "WScript.Shell" nocase
        $run_shellapp = "Shell.Application" nocase
        $run_shellexec = /\.ShellExecute\s*\(/ nocase
        $run_start = /\bStart-Process\b/ nocase
        $run_iex = /\b(iex|invoke-expression)\b/ nocase
        $run_stream = /ADODB\.Stream/ nocase
        $run_savetofile = /\.SaveToFile\b/ nocase

        $activex = /new\s+ActiveXObject\s*\(/ nocase

    condition:
        filesize < 10MB
        and uint16(0) != 0x5A4D
        and (
            any of ($strong_*)
            or (
                (extension matches /^(js|jse|vbs|vbe|wsf|wsh|hta|ps1|psm1|psd1|bat|cmd|sct|)$/)
                and (any of ($fetch_*) or ($activex and $run_stream))
                and any of ($run_*)
            )
        )
}

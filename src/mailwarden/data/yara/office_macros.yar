/*
 * mailwarden rule pack: Office macro downloaders.
 * Matches VBA source text (as extracted from a document, or an uncompressed module) that runs on open
 * and then starts a process or fetches a URL.
 */

rule MW_Office_Macro_Downloader
{
    meta:
        description = "VBA with an auto-run entry point (AutoOpen, Document_Open, Workbook_Open, ...) that shells out or downloads"
        family = "macro-downloader"
        severity = "high"
        author = "mailwarden"

    strings:
        $auto = /\bSub\s+(Auto_?Open|AutoExec|AutoClose|AutoNew|Document_Open|Document_Close|DocumentOpen|Workbook_Open|Workbook_Activate|Presentation_Open)\s*\(/ nocase

        $act_shell = /\bShell\s*[\( ]/ nocase
        $act_wshell = /CreateObject\s*\(\s*"WScript\.Shell"\s*\)/ nocase
        $act_shellapp = /CreateObject\s*\(\s*"Shell\.Application"\s*\)/ nocase
        $act_urldl = "URLDownloadToFile" nocase
        $act_xmlhttp = /(MSXML2|Microsoft)\.(Server)?XMLHTTP/ nocase
        $act_winhttp = "WinHttp.WinHttpRequest" nocase
        $act_stream = "ADODB.Stream" nocase
        $act_wmi = /winmgmts:.{0,80}Win32_Process/ nocase

    condition:
        filesize < 20MB and $auto and any of ($act_*)
}

/*
 * mailwarden rule pack: shortcuts and disk images.
 * Windows shortcuts that start a shell, and ISO / IMG images carrying a shortcut or a program: images
 * are mounted with a double click and their contents escape the mark of the web.
 */

private rule MW_Is_LNK
{
    meta:
        description = "Windows shell link header (size 0x4C and the ShellLink CLSID)"
    condition:
        uint32(0) == 0x0000004C and uint32(4) == 0x00021401 and uint32(16) == 0x46000000
}

rule MW_LNK_Launches_Shell
{
    meta:
        description = "Windows shortcut (.lnk) that starts PowerShell, cmd, mshta or another script host"
        family = "lnk-launcher"
        severity = "high"
        author = "mailwarden"

    strings:
        $ps = "powershell" ascii wide nocase
        $pwsh = "pwsh.exe" ascii wide nocase
        $cmd = "cmd.exe" ascii wide nocase
        $cmd2 = /\\cmd\b/ ascii wide nocase
        $mshta = "mshta" ascii wide nocase
        $wscript = "wscript" ascii wide nocase
        $cscript = "cscript" ascii wide nocase
        $rundll = "rundll32" ascii wide nocase
        $regsvr = "regsvr32" ascii wide nocase
        $certutil = "certutil" ascii wide nocase

    condition:
        filesize < 4MB and MW_Is_LNK and any of them
}

private rule MW_Is_Disk_Image
{
    meta:
        description = "ISO 9660 / UDF volume descriptor, or a FAT boot sector (an .img floppy or disk image)"
    strings:
        $iso = "CD001"
    condition:
        $iso at 0x8001 or $iso at 0x8801 or $iso at 0x9001
        or (uint16(510) == 0xAA55 and (uint32(54) == 0x31544146 or uint32(82) == 0x33544146))
}

rule MW_Disk_Image_With_Executable
{
    meta:
        description = "ISO/IMG disk image that holds a Windows program (PE) or a shortcut (LNK)"
        family = "container-smuggling"
        severity = "high"
        author = "mailwarden"

    strings:
        $mz = { 4D 5A (90 | 50 | 78 | 00) 00 }
        $lnk = { 4C 00 00 00 01 14 02 00 00 00 00 00 C0 00 00 00 00 00 00 46 }

    condition:
        MW_Is_Disk_Image
        and (
            $lnk
            or for any i in (1..#mz) : (
                uint32(@mz[i] + 0x3C) < 0x1000 and uint32(@mz[i] + uint32(@mz[i] + 0x3C)) == 0x00004550
            )
        )
}

/*
 * mailwarden rule pack: executables in disguise.
 */

rule MW_PE_In_Document_Name
{
    meta:
        description = "Windows program (PE) in a file named like a document, image or text file"
        family = "masquerading-executable"
        severity = "critical"
        author = "mailwarden"

    condition:
        uint16(0) == 0x5A4D
        and uint32(0x3C) < 0x1000
        and uint32(uint32(0x3C)) == 0x00004550
        and extension matches /^(pdf|docx?|docm|xlsx?|xlsm|xlsb|pptx?|pptm|rtf|odt|ods|odp|txt|csv|jpe?g|png|gif|bmp|tiff?|html?|zip|eml|msg)$/
}

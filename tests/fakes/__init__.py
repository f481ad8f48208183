"""Local stand-ins for services that cannot run here (Microsoft Graph, the Gmail API): real HTTPS servers
on loopback that implement the published API subset the product uses and refuse what the real ones refuse."""

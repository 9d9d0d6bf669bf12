"""The SAP ArchiveLink HTTP Content Server 4.5 interface."""

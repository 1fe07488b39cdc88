"""The small runtime every Switchboard service is built on."""

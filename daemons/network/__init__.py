"""The network agent: bridges, DHCP namespaces and dnsmasq per host (pyroute2)."""

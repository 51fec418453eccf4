"""The network service: Neutron v2.0 subset under ``/network`` in ``nubis api``."""

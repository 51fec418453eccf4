"""The compute host: libvirt bring-up, domain XML, config drives, and the libvirt driver.

The compute daemon's HTTP side builds on these modules; they hold no HTTP code.
"""

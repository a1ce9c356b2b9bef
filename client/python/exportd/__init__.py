"""exportd's Python package: exportd.qmp, a QMP client for exportd (and
any QEMU or qemu-storage-daemon monitor) with nothing but the standard
library."""

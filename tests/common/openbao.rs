//! Real OpenBao dev server on a loopback port, for the vault tests.

//! Real moto server on a loopback port, for the aws tests.

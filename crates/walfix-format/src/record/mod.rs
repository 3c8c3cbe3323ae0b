//! Record payloads (stub, being written).

//! Data sources. Each has the same shape: `fetch` (I/O) → typed snapshot → `encode`.

pub mod ebpf;
pub mod ipvs;
pub mod openflow;
pub mod ovsdb;
pub mod sriov;

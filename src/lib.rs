//! Siskin: progressive delivery for Kubernetes.

pub mod analysis;
